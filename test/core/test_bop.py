"""The BOP reader on the real LM-O subset (scene 2, 100 frames) and on a tiny folder of our own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gcf_ros.core._bop_camera import image_size
from gcf_ros.core.bop import LMO_SYMMETRIC_OBJ_IDS, BopDataset, BopFrame


@pytest.fixture(scope="module")
def lmo(lmo_root: Path) -> BopDataset:
    return BopDataset(lmo_root)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_scene_and_frames(lmo: BopDataset, lmo_root: Path):
    assert lmo.scene_ids == (2,) and len(lmo) == 100
    frames = list(lmo.frames())
    keys = [(f.scene_id, f.im_id) for f in frames]
    assert keys == sorted(keys) and len(set(keys)) == 100
    assert keys == [
        (2, int(k)) for k in sorted(_json(lmo_root / "test/000002/scene_gt.json"), key=int)
    ]
    cam = _json(lmo_root / "camera.json")
    K = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
    for frame in frames:
        np.testing.assert_array_equal(frame.K, K)
        assert (frame.width, frame.height) == (640, 480)
    assert lmo.frame(2, frames[5].im_id) is frames[5]
    with pytest.raises(KeyError, match="no image 1"):
        lmo.frame(2, 1)
    with pytest.raises(KeyError, match="unknown scene 7"):
        lmo.frame(7, 3)


def test_first_frame_matches_scene_gt(lmo: BopDataset, lmo_root: Path):
    gt = _json(lmo_root / "test/000002/scene_gt.json")
    info = _json(lmo_root / "test/000002/scene_gt_info.json")
    frame = next(lmo.frames())
    key = str(frame.im_id)
    assert frame.rgb_path == lmo_root / "test/000002/rgb" / f"{frame.im_id:06d}.png"
    assert len(frame.instances) == len(gt[key])
    for idx, (inst, entry, inf) in enumerate(zip(frame.instances, gt[key], info[key], strict=True)):
        assert (inst.scene_id, inst.im_id, inst.inst_idx, inst.obj_id) == (
            2,
            frame.im_id,
            idx,
            entry["obj_id"],
        )
        # projected onto SO(3): LM-O's stored matrices are off orthonormal by up to 2e-3
        np.testing.assert_allclose(
            inst.R_cam_obj, np.reshape(entry["cam_R_m2c"], (3, 3)), atol=3e-3
        )
        np.testing.assert_allclose(inst.t_cam_obj, np.array(entry["cam_t_m2c"]) / 1000.0)
        assert inst.visib_fract == inf["visib_fract"]
        assert inst.bbox_visib == tuple(inf["bbox_visib"]) and inst.bbox_obj == tuple(
            inf["bbox_obj"]
        )
        assert inst.model_id == f"obj_{entry['obj_id']:06d}"
        T = inst.T_cam_obj
        assert T.shape == (4, 4) and T.dtype == np.float64
        np.testing.assert_array_equal(T[:3, :3], inst.R_cam_obj)
        np.testing.assert_array_equal(T[:3, 3], inst.t_cam_obj)
        np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    assert 0.5 < np.linalg.norm(frame.instances[0].t_cam_obj) < 1.5  # metres, not millimetres


def test_all_rotations_orthonormal_and_visibility_valid(lmo: BopDataset):
    count = 0
    for _, inst in lmo.instances():
        R = inst.R_cam_obj
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
        assert 0.0 <= inst.visib_fract <= 1.0
        assert len(inst.bbox_visib) == 4 and all(isinstance(v, int) for v in inst.bbox_visib)
        assert not inst.R_cam_obj.flags.writeable
        count += 1
    assert count == sum(len(f.instances) for f in lmo.frames())


def test_instances_min_visib_matches_json(lmo: BopDataset, lmo_root: Path):
    info = _json(lmo_root / "test/000002/scene_gt_info.json")
    expected = sum(1 for entries in info.values() for e in entries if e["visib_fract"] >= 0.3)
    got = list(lmo.instances(min_visib=0.3))
    assert len(got) == expected and 0 < expected < sum(len(v) for v in info.values())
    assert all(inst.visib_fract >= 0.3 for _, inst in got)


def test_load_rgb_is_rgb_uint8(lmo: BopDataset, tmp_path: Path):
    frame = next(lmo.frames())
    rgb = frame.load_rgb()
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, cv2.imread(str(frame.rgb_path))[:, :, ::-1])
    assert rgb.std() > 10  # a real photograph
    missing = BopFrame(2, 0, tmp_path / "none.png", frame.K, 640, 480, ())
    with pytest.raises(FileNotFoundError, match=r"none\.png"):
        missing.load_rgb()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png"):
        BopFrame(2, 0, tmp_path / "bad.png", frame.K, 640, 480, ()).load_rgb()


def test_models_info_and_registry(lmo: BopDataset, lmo_root: Path):
    raw = _json(lmo_root / "models/models_info.json")
    assert sorted(lmo.models_info) == [1, 5, 6, 8, 9, 10, 11, 12]
    ape = lmo.models_info[1]
    assert ape["diameter_m"] == pytest.approx(raw["1"]["diameter"] / 1000.0)
    np.testing.assert_allclose(
        ape["bbox_min_m"] * 1000.0, [raw["1"][k] for k in ("min_x", "min_y", "min_z")]
    )
    np.testing.assert_allclose(
        ape["bbox_size_m"] * 1000.0, [raw["1"][k] for k in ("size_x", "size_y", "size_z")]
    )
    assert lmo.model_path(8) == lmo_root / "models/obj_000008.ply"
    with pytest.raises(FileNotFoundError, match=r"obj_000002\.ply"):
        lmo.model_path(2)
    registry = lmo.model_registry(face_budget=3000)
    assert registry.ids == tuple(f"obj_{i:06d}" for i in sorted(lmo.models_info))
    assert LMO_SYMMETRIC_OBJ_IDS == (10, 11)
    for obj_id in lmo.models_info:
        spec = registry.spec(f"obj_{obj_id:06d}")
        assert spec.symmetric == (obj_id in (10, 11)) and spec.scale == 0.001
        assert spec.face_budget == 3000
    glue = registry.get("obj_000011")
    assert glue.diameter == pytest.approx(lmo.models_info[11]["diameter_m"], rel=5e-3)


def _symlinked_copy(lmo_root: Path, dst: Path, skip: set[str]) -> Path:
    """A BOP folder whose files are symlinks into ``lmo_root``, minus the names in ``skip``."""
    scene = dst / "test" / "000002"
    scene.mkdir(parents=True)
    for name in ("camera.json", "models"):
        (dst / name).symlink_to(lmo_root / name)
    for src in (lmo_root / "test" / "000002").iterdir():
        if src.name not in skip:
            (scene / src.name).symlink_to(src)
    return dst


def test_without_scene_gt_info_visibility_is_none(lmo_root: Path, tmp_path: Path):
    root = _symlinked_copy(lmo_root, tmp_path / "lmo", skip={"scene_gt_info.json"})
    ds = BopDataset(root)
    assert len(ds) == 100
    pairs = list(ds.instances())
    assert pairs and all(i.visib_fract is None and i.bbox_visib is None for _, i in pairs)
    assert all(i.bbox_obj is None for _, i in pairs)
    assert list(ds.instances(min_visib=0.3)) == []
    np.testing.assert_array_equal(next(ds.frames()).load_rgb().shape, (480, 640, 3))


def test_without_scene_camera_uses_camera_json(lmo_root: Path, tmp_path: Path):
    root = _symlinked_copy(lmo_root, tmp_path / "lmo", skip={"scene_camera.json"})
    cam = _json(lmo_root / "camera.json")
    frame = BopDataset(root).frame(2, 3)
    assert frame.K[0, 0] == cam["fx"] and frame.K[1, 2] == cam["cy"]


def test_missing_files_are_named(lmo_root: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="val"):
        BopDataset(lmo_root, split="val")
    (tmp_path / "test" / "000001").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"camera\.json"):
        BopDataset(tmp_path)
    (tmp_path / "camera.json").symlink_to(lmo_root / "camera.json")
    with pytest.raises(FileNotFoundError, match=r"scene_gt\.json"):
        len(BopDataset(tmp_path))


def test_lmo_has_no_depth(lmo: BopDataset):
    frame = next(lmo.frames())
    assert frame.depth_path == frame.rgb_path.parent.parent / "depth" / f"{frame.im_id:06d}.png"
    assert frame.depth_scale == 1.0
    assert frame.load_depth() is None
    with pytest.raises(FileNotFoundError, match="gcf-simdepth"):
        frame.load_depth(required=True)


def test_depth_is_read_in_metres_with_the_frames_depth_scale(lmo_root: Path, tmp_path: Path):
    """BOP: PNG value × depth_scale = mm (0.1 here, as some BOP datasets store); 0 stays 0."""
    root = _symlinked_copy(lmo_root, tmp_path / "lmo", skip={"scene_camera.json"})
    scene = root / "test" / "000002"
    cams = _json(lmo_root / "test/000002/scene_camera.json")
    (scene / "scene_camera.json").write_text(
        json.dumps({k: {**v, "depth_scale": 0.1} for k, v in cams.items()})
    )
    frame = next(BopDataset(root).frames())
    assert frame.depth_scale == 0.1
    raw = np.random.default_rng(0).integers(0, 20_000, size=(480, 640), dtype=np.uint16)
    raw[:10] = 0
    (scene / "depth").mkdir()
    assert cv2.imwrite(str(frame.depth_path), raw)
    depth = frame.load_depth(required=True)
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    np.testing.assert_allclose(depth, raw * 1e-4, rtol=1e-6)  # 0.1 mm steps, in metres
    assert (depth[:10] == 0).all() and (depth[raw > 0] > 0).all()

    other = BopDataset(root).frame(2, int(sorted(cams, key=int)[1]))
    with pytest.raises(FileNotFoundError, match="depth image not found"):
        other.load_depth()  # the folder exists, this frame's file does not
    assert cv2.imwrite(str(other.depth_path), raw[:240])
    with pytest.raises(ValueError, match="640 x 480"):
        other.load_depth()
    assert cv2.imwrite(str(other.depth_path), (raw // 256).astype(np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        other.load_depth()
    other.depth_path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable"):
        other.load_depth()


# The tiny BOP folder of test/conftest.py: two images of different sizes and intrinsics, lengths in
# metres (tiny_bop) or millimetres (tiny_bop_mm).


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_dataset_unit_applies_to_poses_depth_and_models(tiny_bop: Path, tiny_bop_mm: Path):
    """The same scene stored in metres (read with unit="m") and in millimetres (BOP's default)
    gives the same frames, poses, model sizes and meshes in metres."""
    in_m, in_mm = BopDataset(tiny_bop, unit="m"), BopDataset(tiny_bop_mm)
    assert (in_m.unit_to_m, in_mm.unit_to_m) == (1.0, 0.001)
    for a, b in zip(in_m.frames(), in_mm.frames(), strict=True):
        assert (a.im_id, a.width, a.height) == (b.im_id, b.width, b.height)
        assert (a.unit_to_m, b.unit_to_m) == (1.0, 0.001)
        for ia, ib in zip(a.instances, b.instances, strict=True):
            np.testing.assert_allclose(ia.T_cam_obj, ib.T_cam_obj, atol=1e-12)
            assert 0.4 < ia.t_cam_obj[2] < 0.7  # metres: the scene's depth
    np.testing.assert_allclose(in_m.models_info[1]["bbox_size_m"], (0.06, 0.04, 0.03))
    np.testing.assert_allclose(in_mm.models_info[1]["bbox_size_m"], (0.06, 0.04, 0.03))
    reg_m, reg_mm = in_m.model_registry(), in_mm.model_registry()
    assert reg_m.spec("obj_000001").scale == 1.0 and reg_mm.spec("obj_000001").scale == 0.001
    np.testing.assert_allclose(
        reg_m.get("obj_000002").verts_obj, reg_mm.get("obj_000002").verts_obj, atol=1e-7
    )
    with pytest.raises(ValueError, match=r"dataset unit must be one of \['cm', 'm', 'mm'\]"):
        BopDataset(tiny_bop, unit="km")


def test_depth_in_the_dataset_unit(tiny_bop: Path, tmp_path: Path):
    """PNG value × depth_scale is in the dataset's unit: 0.001 turns a metre dataset's mm PNG
    into metres; with BOP's default unit the same scale would mean micrometres."""
    root = _copy(tiny_bop, tmp_path / "bop")
    cams = _json(root / "test/000001/scene_camera.json")
    cams = {k: {**v, "depth_scale": 0.001} for k, v in cams.items()}
    (root / "test/000001/scene_camera.json").write_text(json.dumps(cams))
    frame = next(BopDataset(root, unit="m").frames())
    raw = np.full((frame.height, frame.width), 500, np.uint16)
    (frame.depth_path.parent).mkdir()
    assert cv2.imwrite(str(frame.depth_path), raw)
    np.testing.assert_allclose(frame.load_depth(), 0.5)
    np.testing.assert_allclose(next(BopDataset(root).frames()).load_depth(), 0.0005)


def test_each_image_has_its_own_size(tiny_bop: Path):
    frames = list(BopDataset(tiny_bop, unit="m").frames())
    assert [(f.im_id, f.width, f.height) for f in frames] == [(0, 160, 120), (3, 200, 150)]
    assert frames[1].K[0, 2] == 101.0  # its own cam_K, not camera.json's
    for f in frames:
        assert f.load_rgb().shape == (f.height, f.width, 3)


def test_image_size_from_png_and_jpeg_headers(tmp_path: Path):
    image = np.zeros((37, 53, 3), np.uint8)
    for name in ("a.png", "a.jpg", "a.bmp"):
        assert cv2.imwrite(str(tmp_path / name), image)
        assert image_size(tmp_path / name) == (53, 37)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"bad\.png: unreadable"):
        image_size(tmp_path / "bad.png")


def _edit_cams(root: Path, edit) -> None:
    path = root / "test/000001/scene_camera.json"
    cams = _json(path)
    edit(cams)
    path.write_text(json.dumps(cams))


def test_size_and_intrinsics_that_disagree_name_the_file(tiny_bop: Path, tmp_path: Path):
    rgb3 = r"000001/rgb/000003\.png"
    # a stated size that is not the file's
    root = _copy(tiny_bop, tmp_path / "stated")
    _edit_cams(root, lambda c: c["3"].update(width=640, height=480))
    with pytest.raises(ValueError, match=rf"{rgb3}: image is 200 x 150, but .*scene_camera\.json"):
        list(BopDataset(root, unit="m").frames())
    # no cam_K: camera.json's intrinsics, which are for 160 x 120 images
    root = _copy(tiny_bop, tmp_path / "shared_K")
    _edit_cams(root, lambda c: c["3"].pop("cam_K"))
    with pytest.raises(ValueError, match=rf"{rgb3}: .*camera\.json.* for 160 x 120 images"):
        list(BopDataset(root, unit="m").frames())
    # a principal point outside the image
    root = _copy(tiny_bop, tmp_path / "cx")
    _edit_cams(root, lambda c: c["3"].update(cam_K=[250, 0, 330, 0, 250, 74, 0, 0, 1]))
    with pytest.raises(ValueError, match=rf"{rgb3}: the principal point \(330\.0, 74\.0\)"):
        list(BopDataset(root, unit="m").frames())
    # the image file replaced after the dataset was read
    root = _copy(tiny_bop, tmp_path / "replaced")
    frame = BopDataset(root, unit="m").frame(1, 3)
    assert cv2.imwrite(str(frame.rgb_path), np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(ValueError, match=rf"{rgb3}: image is 20 x 10, its frame 200 x 150"):
        frame.load_rgb()


def test_without_image_files_camera_json_gives_the_size(tiny_bop: Path, tmp_path: Path):
    root = _copy(tiny_bop, tmp_path / "no_rgb")
    shutil.rmtree(root / "test/000001/rgb")
    assert {(f.width, f.height) for f in BopDataset(root, unit="m").frames()} == {(160, 120)}
    camera = _json(root / "camera.json")
    (root / "camera.json").write_text(json.dumps({k: camera[k] for k in ("fx", "fy", "cx", "cy")}))
    with pytest.raises(ValueError, match=r"000000\.png: image not found, and neither"):
        list(BopDataset(root, unit="m").frames())


def test_model_ids_map_bop_ids_to_registry_ids(tiny_bop: Path):
    ds = BopDataset(tiny_bop, unit="m", model_ids={2: "can"})
    assert [i.model_id for i in next(ds.frames()).instances] == ["obj_000001", "can"]
    assert ds.model_registry().ids == ("can", "obj_000001")

"""The BOP reader on the real LM-O subset (scene 2, 100 frames)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

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

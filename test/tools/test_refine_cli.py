"""gcf-refine: the newcomer's path, from a mesh file to a refined pose on a photo (here a
synthetic one, so the truth is known), and its errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial.transform import Rotation

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.tools import models_cli, refine_cli

K_TEXT = "572.4,573.6,325.3,242.0"
K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1]])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A y-up mesh in millimetres registered with gcf-models, its photo (480 x 640, the object over
    a two-tone background), its depth (.npy, metres) and its true pose."""
    root = tmp_path_factory.mktemp("newcomer")
    box = o3d.geometry.TriangleMesh.create_box(90.0, 50.0, 40.0).translate((-45, -25, -20))
    cyl = o3d.geometry.TriangleMesh.create_cylinder(12.0, 60.0).translate((-25, 20, 30))
    mesh = box + cyl
    mesh.compute_vertex_normals()
    o3d.io.write_triangle_mesh(str(root / "widget.ply"), mesh)
    registry = root / "my_models.yaml"
    argv = ["add", str(registry), "--id", "widget", "--mesh", str(root / "widget.ply"),
            "--unit", "mm", "--up", "+y"]  # fmt: skip
    assert models_cli.main(argv) == 0
    model = ModelRegistry.from_yaml(registry).get("widget")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [25, -30, 35], degrees=True).as_matrix()
    T[:3, 3] = (0.02, -0.01, 0.5)
    window = CropWindow(0.0, 0.0, 640.0, 640)
    out = RaycastRenderer().render(
        [model], torch.from_numpy(T)[None], torch.from_numpy(window.K_window(K))[None], 640
    )
    mask = out.mask[0, :480].numpy()
    background = np.zeros((480, 640, 3), np.float32)
    background[:, :320], background[:, 320:] = (0.15, 0.35, 0.55), (0.25, 0.5, 0.3)
    image = np.where(mask[..., None], out.rgb[0, :480].numpy(), background)
    image = np.clip(image + np.random.default_rng(0).normal(0, 0.02, image.shape), 0, 1) * 255
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2BGR))
    depth = out.depth[0, :480].numpy().copy()
    depth[~mask] = 0.8
    np.save(root / "depth.npy", depth.astype(np.float32))
    return root, registry, T


def _start(T: np.ndarray) -> str:
    T0 = T.copy()
    T0[:3, :3] = (
        Rotation.from_rotvec(np.radians(8) * np.array([0.6, 0.8, 0.0])).as_matrix() @ T[:3, :3]
    )
    T0[:3, 3] += (0.012, -0.008, 0.03)
    return refine_cli.format_pose(T0)


def _errors(pose: str, T: np.ndarray) -> tuple[float, float]:
    est = refine_cli.parse_pose(pose)
    cos = (np.trace(est[:3, :3].T @ T[:3, :3]) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1))), 100 * np.linalg.norm(est[:3, 3] - T[:3, 3])


def test_a_mesh_and_a_photo_give_a_refined_pose(scene, tmp_path, capsys):
    root, registry, T = scene
    start = _start(T)
    rot0, cm0 = _errors(start, T)
    argv = ["--models", str(registry), "--image", str(root / "photo.png"), "--K", K_TEXT,
            "--detection", "widget", start, "--out", str(tmp_path / "overlay.png"),
            "--json", str(tmp_path / "out.json")]  # fmt: skip
    assert refine_cli.main(argv) == 0
    out = capsys.readouterr().out
    # the shipped network never saw this mesh: auto picks the training-free region term
    assert "not trained on widget: training-free region term" in out
    doc = json.loads((tmp_path / "out.json").read_text())
    (result,) = doc["results"]
    rot, cm = _errors(result["pose"], T)
    assert rot < 0.6 * rot0 and cm < 0.8 * cm0, (rot0, rot, cm0, cm)
    assert cv2.imread(str(tmp_path / "overlay.png")).shape == (480, 640, 3)
    # and with the registered depth
    assert refine_cli.main([*argv[:-4], "--depth", str(root / "depth.npy"), "--json",
                            str(tmp_path / "d.json")]) == 0  # fmt: skip
    (with_depth,) = json.loads((tmp_path / "d.json").read_text())["results"]
    rot_d, cm_d = _errors(with_depth["pose"], T)
    assert cm_d < 0.5 and rot_d < 0.6 * rot0, (rot_d, cm_d)
    assert "with depth" in capsys.readouterr().out


def test_errors_name_the_problem(scene, tmp_path, capsys):
    root, registry, T = scene
    base = ["--models", str(registry), "--image", str(root / "photo.png"), "--K", K_TEXT]
    cases = [
        (["--detection", "mug", _start(T)], "'mug': not in"),
        (["--detection", "widget", "1 2 3"], "--detection widget: --pose wants"),
        (["--detection", "widget", _start(T), "--depth", str(tmp_path / "no.png")],
         "cannot read depth image"),
        (["--detection", "widget", _start(T), "--checkpoint", "nope.pt"], "nope.pt"),
    ]  # fmt: skip
    np.save(tmp_path / "small.npy", np.zeros((240, 320), np.float32))
    cases.append((["--detection", "widget", _start(T), "--depth", str(tmp_path / "small.npy")],
                  "is not registered to the 640x480 photo"))  # fmt: skip
    for extra, message in cases:
        assert refine_cli.main(base + extra) == 2, extra
        assert message in capsys.readouterr().err, message
    bad_image = ["--image", str(tmp_path / "absent.png")]
    assert refine_cli.main([*base[:2], *bad_image, *base[4:], "--detection", "widget",
                            _start(T)]) == 2  # fmt: skip
    assert "cannot read image" in capsys.readouterr().err


def test_auto_terms_follow_what_the_network_was_trained_on():
    from gcf_ros.gcf.checkpoints import find_checkpoint

    shipped = find_checkpoint(None)
    assert refine_cli.choose_terms("auto", shipped, ["obj_000005"])[0] == ("field", "region")
    assert refine_cli.choose_terms("auto", shipped, ["obj_000005", "mug"])[0] == ("region",)
    assert refine_cli.choose_terms("field,region", shipped, ["mug"])[0] == ("field", "region")

"""The depth sensor model: each degradation on scenes of known geometry, and the table plane."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest
from scipy.spatial.transform import Rotation

from gcf_ros.core.models import ObjectModel
from gcf_ros.core.render.scene import SceneDepth, render_scene_depth
from gcf_ros.eval.simdepth import (
    DepthNoise,
    Plane,
    axial_sigma_m,
    drop_pixels,
    simulate_depth,
    simulate_frame_depth,
    support_plane,
)

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
H, W = 480, 640
NOISE_ONLY = DepthNoise(hole_fraction=0.0, edge_jump_m=math.inf, quantum_m=0.0, max_depth_m=10.0)


def box_model(size_xyz: tuple[float, float, float], name: str = "box") -> ObjectModel:
    """An axis-aligned box centred on the object origin, metres."""
    sx, sy, sz = size_xyz
    mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz).translate((-sx / 2, -sy / 2, -sz / 2))
    mesh.compute_vertex_normals()
    verts = np.asarray(mesh.vertices, dtype=np.float32)
    return ObjectModel(
        model_id=name, verts_obj=verts, faces=np.asarray(mesh.triangles, dtype=np.int32),
        vert_colors=np.full_like(verts, 0.5),
        vert_normals_obj=np.asarray(mesh.vertex_normals, dtype=np.float32),
        diameter=float(np.linalg.norm(size_xyz)), bbox_min=verts.min(0), bbox_max=verts.max(0),
        symmetric=False, tf_name=name, source_path=Path(f"{name}.ply"),
    )  # fmt: skip


def _empty(shape=(H, W)) -> SceneDepth:
    return SceneDepth(np.zeros(shape, np.float32), np.full(shape, -1, np.int32))


def _wall(z: float) -> Plane:
    """A fronto-parallel plane at depth z."""
    return Plane(np.array([0.0, 0.0, -1.0]), z)


def _box_on_wall(noise: DepthNoise, seed: int = 0) -> tuple[SceneDepth, np.ndarray]:
    """A 0.2 m cube 1 m ahead, in front of a wall at 1.5 m."""
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 1.0)
    scene = render_scene_depth([box_model((0.2, 0.2, 0.2))], T[None], K, (H, W))
    return scene, simulate_depth(scene, K, np.random.default_rng(seed), noise, _wall(1.5))


@pytest.mark.parametrize("z", [0.6, 1.5, 3.0])
def test_axial_noise_std_follows_the_z_squared_model(z):
    """Nguyen et al. 2012: σ_z = 1.2 mm + 1.9 mm/m² (z − 0.4 m)², i.e. 1.28, 2.50, 14.0 mm here."""
    depth = simulate_depth(_empty(), K, np.random.default_rng(1), NOISE_ONLY, _wall(z))
    assert (depth > 0).all()
    expected = 0.0012 + 0.0019 * (z - 0.4) ** 2
    assert axial_sigma_m(z, NOISE_ONLY) == pytest.approx(expected)
    assert depth.std() == pytest.approx(expected, rel=0.02)  # 307 200 samples: ~0.13 % std error
    assert depth.mean() == pytest.approx(z, abs=expected / 50)


def test_depth_is_quantised_to_a_millimetre():
    depth = simulate_depth(_empty(), K, np.random.default_rng(2), DepthNoise(), _wall(1.2345))
    mm = depth[depth > 0].astype(np.float64) * 1000.0
    np.testing.assert_allclose(mm, np.round(mm), atol=1e-3)
    assert len(np.unique(mm.round())) > 5  # and noisy


def test_discontinuities_are_dropped_and_surfaces_kept():
    """The box's silhouette (a 0.5 m jump to the wall): both sides, dilated by a pixel, are
    missing; away from edges every pixel is measured (no random holes here)."""
    noise = DepthNoise(hole_fraction=0.0)
    scene, depth = _box_on_wall(noise)
    box = scene.mask.astype(np.uint8)
    boundary = (
        cv2.dilate(box, np.ones((3, 3), np.uint8)) - cv2.erode(box, np.ones((3, 3), np.uint8))
    ) > 0
    assert boundary.sum() > 500 and (depth[boundary] == 0).all()
    far = cv2.dilate(boundary.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert (depth[far] > 0).all()
    np.testing.assert_allclose(depth[far & scene.mask], 0.9, atol=0.01)  # the box's face
    np.testing.assert_allclose(depth[far & ~scene.mask], 1.5, atol=0.03)  # the wall
    keep_edges = simulate_depth(scene, K, np.random.default_rng(0), DepthNoise(
        hole_fraction=0.0, edge_jump_m=math.inf), _wall(1.5))  # fmt: skip
    assert (keep_edges > 0).all()


def test_random_holes_are_blobs_covering_the_requested_fraction():
    noise = DepthNoise.ideal()
    noise = DepthNoise(**{**noise.__dict__, "hole_fraction": 0.05, "hole_size_px": 2.0})
    depth = simulate_depth(_empty(), K, np.random.default_rng(3), noise, _wall(1.0))
    holes = depth == 0
    assert holes.mean() == pytest.approx(0.05, abs=0.002)
    _, _, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    assert stats[1:, cv2.CC_STAT_AREA].mean() > 5  # blobs, not scattered single pixels


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.7])
def test_drop_fraction_removes_that_share_of_the_valid_pixels(fraction):
    """Same seed, same image up to the final drop: exactly round(f × valid) more pixels missing,
    all of them among the valid ones, the rest untouched."""
    base = DepthNoise()
    _, depth0 = _box_on_wall(base, seed=5)
    _, depth = _box_on_wall(DepthNoise(**{**base.__dict__, "drop_fraction": fraction}), seed=5)
    valid0 = depth0 > 0
    assert (depth > 0).sum() == valid0.sum() - round(fraction * valid0.sum())
    assert not (depth > 0)[~valid0].any()
    kept = depth > 0
    np.testing.assert_array_equal(depth[kept], depth0[kept])


def test_drop_pixels_treats_nan_as_missing_and_checks_the_fraction():
    depth = np.array([[1.0, np.nan], [0.0, 2.0]], dtype=np.float32)
    out = drop_pixels(depth, 0.5, np.random.default_rng(0))
    assert np.isfinite(out).all() and (out > 0).sum() == 1
    with pytest.raises(ValueError, match="drop fraction"):
        drop_pixels(depth, 1.0, np.random.default_rng(0))


def test_a_seed_gives_the_same_image():
    _, a = _box_on_wall(DepthNoise(), seed=7)
    _, b = _box_on_wall(DepthNoise(), seed=7)
    _, c = _box_on_wall(DepthNoise(), seed=8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.3


def test_range_limits_and_a_plane_behind_the_camera():
    near = simulate_depth(_empty(), K, np.random.default_rng(0), DepthNoise(), _wall(0.3))
    far = simulate_depth(_empty(), K, np.random.default_rng(0), DepthNoise(), _wall(4.5))
    assert not near.any() and not far.any()
    ceiling = Plane(np.array([0.0, 0.0, 1.0]), 1.0)  # z = 1 behind the camera: never seen
    assert Plane(np.array([0.0, 0.0, 1.0]), 1.0).depth(K, (H, W)).max() == 0.0
    assert not simulate_depth(_empty(), K, np.random.default_rng(0), None, ceiling).any()


def _tilted_table() -> tuple[np.ndarray, float]:
    """A table 0.6 m below a camera looking down at 50°: (up normal (3,), camera height)."""
    up = Rotation.from_euler("x", 50, degrees=True).apply([0.0, -1.0, 0.0])
    return up, 0.6


def _resting_boxes(up: np.ndarray, height: float, count: int, seed: int = 0):
    """``count`` boxes standing on the table (random yaw), in view: models and (N, 4, 4)."""
    rng = np.random.default_rng(seed)
    x_t = np.cross(up, [0.0, 0.0, 1.0])
    x_t /= np.linalg.norm(x_t)
    y_t = np.cross(up, x_t)
    centre = np.array([0.0, 0.0, -height / up[2]])  # the optical axis meets the table
    models, Ts = [], []
    for i in range(count):
        size = rng.uniform(0.04, 0.12, 3)
        R_table = np.stack([x_t, y_t, up], axis=1)  # columns: table axes in the camera frame
        R = R_table @ Rotation.from_euler("z", rng.uniform(0, 360), degrees=True).as_matrix()
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = centre + rng.uniform(-0.15, 0.15) * x_t + rng.uniform(-0.15, 0.15) * y_t
        T[:3, 3] += up * size[2] / 2  # the bottom face on the table
        models.append(box_model(tuple(size), f"box{i}"))
        Ts.append(T)
    return models, np.stack(Ts)


def test_support_plane_recovers_the_table_under_resting_objects():
    up, height = _tilted_table()
    models, T = _resting_boxes(up, height, count=5)
    plane = support_plane(models, T)
    assert np.degrees(np.arccos(np.clip(plane.normal_cam @ up, -1, 1))) < 0.5
    assert plane.camera_height_m == pytest.approx(height, abs=1e-3)
    depth = simulate_frame_depth(models, T, K, (H, W), np.random.default_rng(0))
    assert (depth > 0).mean() > 0.8  # the table fills the view


def test_support_plane_lies_under_every_lmo_object(lmo_root, registry):
    """The first LM-O frame: no vertex below the plane, and every object touches it (its lowest
    vertex within 1.5 cm): the plane is the table, not a plane through the objects."""
    from gcf_ros.core.bop import BopDataset

    frame = next(iter(BopDataset(lmo_root).frames()))
    models = [registry.get(inst.model_id) for inst in frame.instances]
    T = np.stack([inst.T_cam_obj for inst in frame.instances])
    plane = support_plane(models, T)
    for m, t in zip(models, T, strict=True):
        heights = plane.height_m(m.verts_obj.astype(np.float64) @ t[:3, :3].T + t[:3, 3])
        assert heights.min() >= -1e-9 and heights.min() < 0.015, m.model_id
    assert plane.normal_cam @ T[:, :3, 3].mean(0) < 0  # the camera is above the table


def test_support_plane_falls_back_behind_the_farthest_object():
    models, T = _resting_boxes(*_tilted_table(), count=2)
    plane = support_plane(models, T, fallback_margin_m=0.1)
    np.testing.assert_array_equal(plane.normal_cam, [0.0, 0.0, -1.0])
    far = max(
        (m.verts_obj @ t[:3, :3].T + t[:3, 3])[:, 2].max() for m, t in zip(models, T, strict=True)
    )
    assert plane.camera_height_m == pytest.approx(far + 0.1, abs=1e-6)
    collinear = np.stack([np.eye(4)] * 3)
    collinear[:, :3, 3] = [[0.0, 0.0, 0.8], [0.0, 0.0, 1.0], [0.0, 0.0, 1.2]]
    line = support_plane([box_model((0.05, 0.05, 0.05))] * 3, collinear)
    np.testing.assert_array_equal(line.normal_cam, [0.0, 0.0, -1.0])


def test_settings_are_checked():
    with pytest.raises(ValueError, match="drop_fraction"):
        DepthNoise(drop_fraction=1.0)
    with pytest.raises(ValueError, match="sigma_base_m"):
        DepthNoise(sigma_base_m=-1e-3)
    with pytest.raises(ValueError, match="max_depth_m"):
        DepthNoise(min_depth_m=2.0, max_depth_m=1.0)
    with pytest.raises(ValueError, match="unit"):
        Plane(np.array([0.0, 0.0, 2.0]), 1.0)

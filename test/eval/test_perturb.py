"""The initial-pose protocol of docs/design.md §4 (gcf_ros.eval.perturb)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gcf_ros.eval.metrics import rotation_error_deg
from gcf_ros.eval.perturb import (
    NOISE_LEVELS,
    NoiseLevel,
    perturb_instances,
    perturb_pose,
    rodrigues,
)


def _gt_poses(n: int, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for R in Rotation.random(n, random_state=rng).as_matrix():
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = rng.uniform(-0.2, 0.2, 3) + np.array([0.0, 0.0, 0.8])
        out.append(T)
    return out


def test_levels_match_the_design():
    assert NOISE_LEVELS["small"] == NoiseLevel("small", 5, 0.01, 0.03)
    assert NOISE_LEVELS["medium"] == NoiseLevel("medium", 15, 0.02, 0.07)
    assert NOISE_LEVELS["large"] == NoiseLevel("large", 30, 0.04, 0.15)


def test_rodrigues_matches_scipy():
    for w in np.random.default_rng(2).normal(size=(20, 3)):
        np.testing.assert_allclose(rodrigues(w), Rotation.from_rotvec(w).as_matrix(), atol=1e-12)
    np.testing.assert_array_equal(rodrigues(np.zeros(3)), np.eye(3))


def test_reproducible_for_a_seed_and_distinct_for_another():
    gts = _gt_poses(10)
    a = perturb_instances(gts, NOISE_LEVELS["medium"], seed=0)
    b = perturb_instances(gts, "medium", seed=0)
    c = perturb_instances(gts, "medium", seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not np.allclose(x, y) for x, y in zip(a, c, strict=True))
    default = perturb_instances(gts, "medium")  # the protocol's default seed is 0
    np.testing.assert_array_equal(np.stack(default), np.stack(a))
    with pytest.raises(ValueError, match="noise level"):
        perturb_instances(gts, "huge")


def test_output_is_a_rigid_transform():
    for T0 in perturb_instances(_gt_poses(20), "large"):
        R = T0[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_array_equal(T0[3], [0.0, 0.0, 0.0, 1.0])


def test_draw_order_is_the_documented_protocol():
    """Reimplements the documented draws inline: (a) axis, (b) angle, (c) x-y, (d) depth."""
    gts = _gt_poses(25)
    level = NOISE_LEVELS["large"]
    got = perturb_instances(gts, level, seed=42)
    rng = np.random.default_rng(42)
    for T, T0 in zip(gts, got, strict=True):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0, math.radians(level.max_angle_deg))
        dxy = rng.normal(0, level.sigma_xy_m, size=2)
        dz = rng.normal(0, level.sigma_z_rel)
        R0 = Rotation.from_rotvec(angle * axis).as_matrix() @ T[:3, :3]
        t0 = np.array([T[0, 3] + dxy[0], T[1, 3] + dxy[1], T[2, 3] * (1 + dz)])
        np.testing.assert_allclose(T0[:3, :3], R0, atol=1e-12)
        np.testing.assert_allclose(T0[:3, 3], t0, atol=1e-15)


@pytest.mark.parametrize("name", ["small", "medium", "large"])
def test_statistics_match_the_level(name):
    level = NOISE_LEVELS[name]
    n = 20_000
    T = np.eye(4)
    T[:3, 3] = (0.1, -0.05, 1.0)  # depth 1 m: t0_z - 1 is the depth factor's noise
    rng = np.random.default_rng(123)
    out = np.stack([perturb_pose(T, level, rng) for _ in range(n)])
    angles = rotation_error_deg(out[:, :3, :3], np.broadcast_to(np.eye(3), (n, 3, 3)))
    assert angles.max() <= level.max_angle_deg + 1e-9
    assert angles.mean() == pytest.approx(level.max_angle_deg / 2, rel=0.02)
    dxy = out[:, :2, 3] - T[:2, 3]
    assert np.abs(dxy.mean(axis=0)).max() < 4 * level.sigma_xy_m / math.sqrt(n)
    np.testing.assert_allclose(dxy.std(axis=0), level.sigma_xy_m, rtol=0.03)
    dz = out[:, 2, 3] / T[2, 3] - 1.0
    assert dz.std() == pytest.approx(level.sigma_z_rel, rel=0.03)
    axes = Rotation.from_matrix(out[:, :3, :3]).as_rotvec()
    axes = axes[np.linalg.norm(axes, axis=1) > 1e-3]
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    assert np.abs(axes.mean(axis=0)).max() < 0.03  # axes uniform on the sphere


def test_left_perturbation_of_a_rotated_pose():
    """R0 R*^T is the drawn rotation (left), so the angle to R* is at most A for any R*."""
    gts = _gt_poses(200)
    for T, T0 in zip(gts, perturb_instances(gts, "small", seed=3), strict=True):
        assert rotation_error_deg(T0[:3, :3], T[:3, :3]) <= 5.0 + 1e-9

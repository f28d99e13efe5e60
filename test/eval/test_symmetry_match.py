"""Pose errors of symmetric objects (gcf_ros.eval.symmetry_match, gcf_ros.eval.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gcf_ros.core.symmetry import Symmetry
from gcf_ros.eval.metrics import add, add_symmetric, adds, pose_errors, summarize
from gcf_ros.eval.perturb import rodrigues
from gcf_ros.eval.symmetry_match import _rotation_about, candidate_gt_poses

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
AXIS = np.array([0.0, 0.0, 1.0])
OFFSET = np.array([0.01, -0.02, 0.0])  # the axis misses the origin: symmetries move it


def _T_gt() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec([0.4, -0.3, 0.2]).as_matrix()
    T[:3, 3] = (0.03, -0.02, 0.6)
    return T


def _cylinder(n: int = 48, radius: float = 0.03, height: float = 0.08) -> np.ndarray:
    """Two rings of n points about the symmetry axis (through OFFSET), metres."""
    a = np.arange(n) * 2 * np.pi / n
    ring = np.stack([radius * np.cos(a), radius * np.sin(a), np.zeros(n)], axis=1)
    return np.concatenate([ring, ring + np.array([0.0, 0.0, height])]) + OFFSET


def _box() -> np.ndarray:
    """A box's surface sample: symmetric under half turns about its axes (x, y, z)."""
    g = np.linspace(-1.0, 1.0, 9)
    pts = np.array([(x, y, z) for x in g for y in g for z in g])
    pts = pts[np.abs(pts).max(axis=1) == 1.0]
    return pts * (0.05, 0.03, 0.02)


def _half_turn(axis) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rodrigues(np.pi * np.asarray(axis, float))
    return T


@pytest.mark.parametrize("angle_deg", [0.0, 7.5, 37.3, 123.0, 180.0, -64.0])
def test_rotation_about_a_continuous_axis_is_no_error(angle_deg):
    """A cylinder turned about its axis (which misses the origin) by any angle, not only the 36
    sampled ones: every error is zero, although the plain errors are large."""
    sym = Symmetry(kind="continuous", axis=AXIS, offset=OFFSET)
    verts, T_gt = _cylinder(), _T_gt()
    T_est = T_gt @ _rotation_about(AXIS, OFFSET, np.radians(angle_deg))
    e = pose_errors(verts, 0.1, sym, K, T_est, T_gt)
    assert e.rot_deg == pytest.approx(0.0, abs=1e-6)
    assert e.trans_cm == pytest.approx(0.0, abs=1e-9)
    assert e.proj_px == pytest.approx(0.0, abs=1e-6)
    assert e.add_sym_m == pytest.approx(0.0, abs=1e-12)
    assert e.add_m <= adds(verts, T_est, T_gt) + 1e-15  # ADD-S, as for any symmetric object
    if abs(angle_deg) > 1.0:
        plain = pose_errors(verts, 0.1, Symmetry(), K, T_est, T_gt)
        assert plain.rot_deg == pytest.approx(abs(angle_deg), abs=1e-6)
        assert plain.trans_cm > 0.0 and plain.add_m > 0.0


def test_continuous_symmetry_keeps_the_error_off_the_axis():
    """A 4° tilt across the axis after a turn about it: the turn is free, the tilt is not."""
    sym = Symmetry(kind="continuous", axis=AXIS, offset=OFFSET)
    T_gt = _T_gt()
    tilt = np.eye(4)
    tilt[:3, :3] = rodrigues(np.radians(4.0) * np.array([1.0, 0.0, 0.0]))
    T_est = T_gt @ _rotation_about(AXIS, OFFSET, 1.1) @ tilt
    e = pose_errors(_cylinder(), 0.1, sym, K, T_est, T_gt)
    assert e.rot_deg == pytest.approx(4.0, abs=1e-6)
    assert e.add_sym_m > 0.001


def test_closed_form_angle_beats_dense_sampling():
    """The candidate set contains the best rotation of the continuous family: no angle of a
    dense sweep (0.01°) comes closer to a random estimate."""
    rng = np.random.default_rng(5)
    sym = Symmetry(kind="continuous", axis=[0.3, -0.2, 1.0], offset=OFFSET)
    T_gt = _T_gt()
    for _ in range(5):
        T_est = T_gt.copy()
        T_est[:3, :3] = Rotation.random(random_state=rng).as_matrix()
        got = pose_errors(_cylinder(), 0.1, sym, K, T_est, T_gt).rot_deg
        sweep = np.radians(np.arange(0.0, 360.0, 0.01))
        R = np.stack([T_gt[:3, :3] @ _rotation_about(sym.axis, OFFSET, a)[:3, :3] for a in sweep])
        dense = np.degrees(Rotation.from_matrix(R @ T_est[:3, :3].T).magnitude()).min()
        assert got <= dense + 1e-9 and got == pytest.approx(dense, abs=1e-3)


def test_discrete_symmetry_box_half_turn():
    """A box turned half a turn about z equals the ground truth under its discrete symmetry:
    zero rotation error and ADD over symmetries, where the plain ones are 180° and large. A
    further 3° turn about x counts 3°."""
    sym = Symmetry(kind="discrete", transforms=np.stack([_half_turn(a) for a in np.eye(3)]))
    verts, T_gt = _box(), _T_gt()
    T_est = T_gt @ _half_turn([0.0, 0.0, 1.0])
    e = pose_errors(verts, 0.1, sym, K, T_est, T_gt)
    assert (e.rot_deg, e.trans_cm) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert e.add_sym_m == pytest.approx(0.0, abs=1e-12) and e.proj_px < 1e-6
    assert add(verts, T_est, T_gt) > 0.02
    assert pose_errors(verts, 0.1, Symmetry(), K, T_est, T_gt).rot_deg == pytest.approx(180.0)
    tilt = _half_turn([0.0, 0.0, 1.0]) @ np.block(
        [[rodrigues(np.radians(3.0) * np.array([1.0, 0.0, 0.0])), np.zeros((3, 1))],
         [np.zeros((1, 3)), np.ones((1, 1))]]
    )  # fmt: skip
    assert pose_errors(verts, 0.1, sym, K, T_gt @ tilt, T_gt).rot_deg == pytest.approx(3.0)
    assert add_symmetric(verts, sym, T_est, T_gt) == pytest.approx(0.0, abs=1e-12)


def test_unspecified_and_none_are_the_plain_errors():
    """Without transforms (legacy ``symmetric: true``) rotation, translation and projection stay
    plain, and both ADDs are ADD-S; ``none`` gives ADD for both."""
    verts, T_gt = _box(), _T_gt()
    T_est = T_gt @ _half_turn([0.0, 0.0, 1.0])
    for flag, sym in ((True, Symmetry.unspecified()), (False, Symmetry())):
        e, legacy = (pose_errors(verts, 0.1, s, K, T_est, T_gt) for s in (sym, flag))
        assert e == legacy
        assert e.rot_deg == pytest.approx(180.0)
        expected = adds(verts, T_est, T_gt) if flag else add(verts, T_est, T_gt)
        assert e.add_m == e.add_sym_m == pytest.approx(expected)
    assert len(candidate_gt_poses(Symmetry.unspecified(), T_est, T_gt)) == 1


def test_summary_counts_add_over_symmetries():
    verts, T_gt = _box(), _T_gt()
    sym = Symmetry(kind="discrete", transforms=_half_turn([0.0, 0.0, 1.0])[None])
    flipped = T_gt @ _half_turn([0.0, 0.0, 1.0])
    tilted = T_gt @ _half_turn([1.0, 0.0, 0.0])  # not a symmetry of ``sym``: ADD-S forgives it
    errors = [pose_errors(verts, 0.1, sym, K, T, T_gt) for T in (flipped, tilted)]
    s = summarize(errors)
    assert s.add_s_01d == 1.0 and s.add_sym_01d == 0.5

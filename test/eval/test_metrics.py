"""Pose-error metrics on hand-made cases (gcf_ros.eval.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gcf_ros.eval.metrics import (
    PoseErrors,
    Summary,
    accuracy_curve,
    add,
    add_or_adds,
    adds,
    pose_errors,
    projection_error_px,
    rotation_error_deg,
    summarize,
    translation_error_cm,
)
from gcf_ros.eval.perturb import rodrigues

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def _T(R=None, t=(0.0, 0.0, 0.5)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.eye(3) if R is None else R
    T[:3, 3] = t
    return T


@pytest.fixture
def cloud() -> np.ndarray:
    """An asymmetric cloud of 500 points in a ~10 cm box, metres."""
    return np.random.default_rng(1).uniform(-0.05, 0.05, size=(500, 3)) * (1.0, 0.6, 0.3)


def _ring(n: int = 72, radius: float = 0.05) -> np.ndarray:
    """A ring of n points about z (symmetric under rotations by multiples of 360°/n)."""
    a = np.arange(n) * 2 * np.pi / n
    return np.stack([radius * np.cos(a), radius * np.sin(a), np.zeros(n)], axis=1)


def test_identity_gives_zero_errors(cloud):
    T = _T()
    e = pose_errors(cloud, 0.1, False, K, T, T)
    assert e == PoseErrors(0.0, 0.0, 0.0, 0.0, 0.1, add_sym_m=0.0)
    assert adds(cloud, T, T) == 0.0


def test_pure_rotation_about_z(cloud):
    R = rodrigues(np.radians(10.0) * np.array([0.0, 0.0, 1.0]))
    e = pose_errors(cloud, 0.1, False, K, _T(R), _T())
    assert e.rot_deg == pytest.approx(10.0, abs=1e-10)
    assert e.trans_cm == 0.0
    assert e.add_m > 0.0
    assert e.proj_px > 0.0


def test_pure_translation(cloud):
    e = pose_errors(cloud, 0.1, False, K, _T(t=(0.0, 0.03, 0.5)), _T())
    assert e.rot_deg == 0.0
    assert e.trans_cm == pytest.approx(3.0, abs=1e-12)
    assert e.add_m == pytest.approx(0.03, abs=1e-12)
    assert add(cloud, _T(t=(0.0, 0.0, 0.53)), _T()) == pytest.approx(0.03, abs=1e-12)


def test_rotation_error_near_180_is_accurate():
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    R_gt = Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix()
    for deg in (180.0, 180.0 - 1e-6, 179.9, 1e-6, 1e-3, 90.0):
        R_est = rodrigues(np.radians(deg) * axis) @ R_gt
        assert rotation_error_deg(R_est, R_gt) == pytest.approx(deg, rel=1e-9, abs=1e-9)


def test_rotation_error_batched_matches_scipy():
    rng = np.random.default_rng(3)
    R1 = Rotation.random(200, random_state=rng)
    R2 = Rotation.random(200, random_state=rng)
    expected = np.degrees((R1 * R2.inv()).magnitude())
    got = rotation_error_deg(R1.as_matrix(), R2.as_matrix())
    np.testing.assert_allclose(got, expected, atol=1e-8)
    assert translation_error_cm(np.zeros((4, 3)), np.ones((4, 3))).shape == (4,)


def test_projection_error_of_known_shift():
    verts = np.array([[0.0, 0.0, 0.0], [0.01, 0.02, 0.0], [-0.03, 0.01, 0.0]])
    # Every vertex at depth 0.5 m; a lateral shift of 1 cm moves each by fx * 0.01 / 0.5 = 12 px.
    assert projection_error_px(verts, K, _T(t=(0.01, 0.0, 0.5)), _T()) == pytest.approx(12.0)
    assert projection_error_px(verts, K, _T(t=(0.006, 0.008, 0.5)), _T()) == pytest.approx(12.0)
    assert projection_error_px(verts, K, _T(t=(0.0, 0.0, -0.5)), _T()) == math.inf


def test_add_is_the_mean_of_unequal_vertex_distances():
    """Three vertices on the x axis at 1, 2 and 6 cm, turned 60° about z (through the origin):
    each moves by 2 r sin 30° = r, so the distances are 1, 2 and 6 cm. ADD is their mean, 3 cm
    (their median, 2 cm, or any other average is wrong)."""
    verts = np.array([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [0.06, 0.0, 0.0]])
    T_est = _T(rodrigues(np.radians(60.0) * np.array([0.0, 0.0, 1.0])))
    assert add(verts, T_est, _T()) == pytest.approx(0.03, abs=1e-12)
    assert add_or_adds(verts, False, T_est, _T()) == pytest.approx(0.03, abs=1e-12)
    assert pose_errors(verts, 0.1, False, K, T_est, _T()).add_m == pytest.approx(0.03, abs=1e-12)
    # ADD-S on the same case: the mean (not the median) of each turned vertex's distance to the
    # nearest unturned one, three unequal distances.
    turned = verts @ T_est[:3, :3].T + T_est[:3, 3]
    base = verts + _T()[:3, 3]
    nearest = np.linalg.norm(turned[:, None] - base[None], axis=2).min(axis=1)
    assert len(set(np.round(nearest, 9))) == 3  # unequal, so mean != median
    assert adds(verts, T_est, _T()) == pytest.approx(nearest.mean(), abs=1e-12)


def test_adds_of_symmetric_object_under_its_symmetry():
    ring = _ring(72)
    R = rodrigues(np.radians(50.0) * np.array([0.0, 0.0, 1.0]))  # 50° = 10 · (360° / 72)
    T_est, T_gt = _T(R), _T()
    assert adds(ring, T_est, T_gt) == pytest.approx(0.0, abs=1e-12)
    assert add(ring, T_est, T_gt) > 0.04
    assert add_or_adds(ring, True, T_est, T_gt) == adds(ring, T_est, T_gt)
    assert add_or_adds(ring, False, T_est, T_gt) == add(ring, T_est, T_gt)
    e = pose_errors(ring, 0.1, True, K, T_est, T_gt)
    assert e.add_m == pytest.approx(0.0, abs=1e-12)
    assert e.rot_deg == pytest.approx(50.0)  # the plain geodesic, documented


def test_add_or_adds_reads_the_model():
    class _Model:
        verts_obj = _ring(36).astype(np.float32)
        symmetric = True

    R = rodrigues(np.radians(30.0) * np.array([0.0, 0.0, 1.0]))
    assert add_or_adds(_Model(), None, _T(R), _T()) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="symmetric"):
        add_or_adds(_ring(), None, _T(R), _T())


def test_adds_never_exceeds_add(cloud):
    rng = np.random.default_rng(7)
    for _ in range(30):
        R = Rotation.random(random_state=rng).as_matrix()
        T_est = _T(R, t=np.array([0.0, 0.0, 0.5]) + rng.normal(0.0, 0.05, 3))
        assert adds(cloud, T_est, _T()) <= add(cloud, T_est, _T()) + 1e-15


def test_adds_kdtree_equals_brute_force():
    rng = np.random.default_rng(11)
    verts = rng.normal(0.0, 0.05, size=(150, 3))
    T_est = _T(Rotation.random(random_state=rng).as_matrix(), t=(0.02, -0.01, 0.6))
    T_gt = _T(Rotation.random(random_state=rng).as_matrix())
    A = verts @ T_est[:3, :3].T + T_est[:3, 3]
    B = verts @ T_gt[:3, :3].T + T_gt[:3, 3]
    brute = np.linalg.norm(A[:, None, :] - B[None, :, :], axis=2).min(axis=1).mean()
    assert adds(verts, T_est, T_gt) == pytest.approx(brute, rel=1e-12)


def _err(rot=0.0, trans=0.0, proj=0.0, add_m=0.0, diam=1.0) -> PoseErrors:
    return PoseErrors(rot, trans, proj, add_m, diam)


def test_summary_thresholds_are_strict():
    # diameter 1 m, so the ADD threshold 0.1 · d is exactly 0.1 in floating point.
    errors = [
        _err(rot=4.999, trans=4.999, proj=4.999, add_m=0.0999),  # passes everything
        _err(rot=5.0, trans=1.0, proj=5.0, add_m=0.1),  # exactly at 5°, 5 px, 0.1 d: fails
        _err(rot=1.0, trans=5.0, proj=5.001, add_m=0.1001),  # exactly at 5 cm: fails
        _err(rot=9.999, proj=100.0, add_m=0.5),  # < 10°
        _err(rot=10.0, proj=1.0, add_m=1.0),  # exactly at 10°: Acc π/18 fails, π/6 passes
        _err(rot=29.999),
        _err(rot=30.0),  # exactly at 30°: Acc π/6 fails
        _err(rot=170.0, trans=float("nan")),  # NaN: fails, +inf in the median
    ]
    s = summarize(errors)
    assert s.n == 8
    assert s.deg5_cm5 == 1 / 8  # entry 0
    assert s.proj_5px == 5 / 8  # entries 0, 4, 5, 6, 7
    assert s.add_s_01d == 4 / 8  # entries 0, 5, 6, 7
    assert s.acc_pi18 == 4 / 8  # entries 0-3
    assert s.acc_pi6 == 6 / 8  # entries 0-5
    assert s.median_rot_deg == pytest.approx((9.999 + 10.0) / 2)
    assert s.median_trans_cm == pytest.approx(0.5)  # 0, 0, 0, 0, 1, 4.999, 5, inf
    assert s.median_proj_px == pytest.approx((1.0 + 4.999) / 2)
    assert list(s.to_dict()) == list(Summary.__dataclass_fields__)
    assert s.to_dict()["n"] == 8


def test_summary_of_nothing_is_nan():
    s = summarize([])
    assert s.n == 0
    values = [v for k, v in s.to_dict().items() if k != "n"]
    assert all(math.isnan(v) for v in values)


def test_accuracy_curve_counts_at_or_below():
    curve = accuracy_curve([1.0, 2.0, 3.0, float("nan")], [0.5, 1.0, 2.5, 3.0, 10.0])
    np.testing.assert_array_equal(curve, [0.0, 0.25, 0.5, 0.75, 0.75])
    assert np.isnan(accuracy_curve([], [1.0, 2.0])).all()


def test_bad_shapes_raise(cloud):
    with pytest.raises(ValueError, match="4, 4"):
        add(cloud, np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="verts_obj"):
        adds(np.zeros((5, 2)), np.eye(4), np.eye(4))
    with pytest.raises(ValueError, match="3, 3"):
        rotation_error_deg(np.eye(4), np.eye(3))


def test_auroc_and_youden_threshold():
    from gcf_ros.eval.confidence import auroc, youden_threshold

    success = np.array([1, 1, 1, 0, 0, 0], bool)
    assert auroc(np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), success) == 1.0  # perfect ranking
    assert auroc(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), success) == 0.0  # inverted
    assert auroc(np.full(6, 0.5), success) == 0.5  # ties count half
    # one failure above one success: 8 of 9 pairs ordered
    assert auroc(np.array([0.9, 0.8, 0.4, 0.5, 0.2, 0.1]), success) == pytest.approx(8 / 9)
    assert youden_threshold(np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), success) == 0.7
    assert np.isnan(auroc(np.ones(3), np.ones(3, bool)))

"""Property tests of gcf_ros.core.geometry against float64 references and known identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gcf_ros.core import geometry as g

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_omegas(n: int, dtype, seed=0) -> torch.Tensor:
    """Axis-angles with angles covering 0, tiny, small, generic and near-pi values."""
    gen = _gen(seed)
    axes = g.random_unit_vectors(n, gen, dtype=torch.float64)
    angles = torch.cat(
        [
            torch.tensor(
                [0.0, 1e-9, 1e-6, 1e-3, 0.05, 0.0999, 0.1001, math.pi - 1e-6, math.pi],
                dtype=torch.float64,
            ),
            torch.rand(n - 9, generator=gen, dtype=torch.float64) * math.pi,
        ]
    )
    return (axes * angles[:, None]).to(dtype)


def _random_transforms(n: int, seed: int) -> torch.Tensor:
    """(n, 4, 4) float64 rigid transforms: rotations of every angle, translations ~ N(0, 1)."""
    t = torch.randn(n, 3, generator=_gen(seed + 100), dtype=torch.float64)
    return g.make_se3(g.so3_exp(_random_omegas(n, torch.float64, seed)), t)


def _rodrigues_reference(omega: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(omega)
    if theta == 0:
        return np.eye(3)
    k = omega / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


@pytest.mark.parametrize("dtype", DTYPES)
def test_so3_exp_matches_rodrigues_and_is_a_rotation(dtype):
    omega = _random_omegas(200, dtype)
    R = g.so3_exp(omega)
    ref = np.stack([_rodrigues_reference(w) for w in omega.double().numpy()])
    np.testing.assert_allclose(R.double().numpy(), ref, atol=TOL[dtype] * 5)
    eye = torch.eye(3, dtype=dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=TOL[dtype] * 5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=dtype), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_log_roundtrips(dtype):
    omega = _random_omegas(300, dtype, seed=1)
    R = g.so3_exp(omega)
    R_back = g.so3_exp(g.so3_log(R))
    torch.testing.assert_close(R_back, R, atol=TOL[dtype] * 20, rtol=0)
    # log(exp(w)) = w away from pi (at pi the axis sign is ambiguous).
    ok = omega.norm(dim=-1) < math.pi - 1e-3
    torch.testing.assert_close(g.so3_log(R)[ok], omega[ok], atol=TOL[dtype] * 20, rtol=0)


def test_so3_log_near_pi_is_accurate_in_float64():
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    for eps in [1e-2, 1e-5, 1e-8]:
        w = axis * (math.pi - eps)
        torch.testing.assert_close(g.so3_log(g.so3_exp(w)), w, atol=1e-7, rtol=0)


def test_apply_agrees_with_the_matrix_product():
    gen = _gen(7)
    T_ab, T_bc = _random_transforms(9, 5), _random_transforms(9, 6)
    X_c = torch.randn(9, 11, 3, generator=gen, dtype=torch.float64)
    direct = g.se3_apply(T_ab @ T_bc, X_c)
    torch.testing.assert_close(direct, g.se3_apply(T_ab, g.se3_apply(T_bc, X_c)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_quaternion_roundtrip_and_known_values(dtype):
    R = g.so3_exp(_random_omegas(300, torch.float64, 6)).to(dtype)
    q = g.matrix_to_quaternion(R)
    assert (q[:, 3] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(300, dtype=dtype))
    torch.testing.assert_close(g.quaternion_to_matrix(q), R, atol=TOL[dtype] * 20, rtol=0)
    # 90 degrees about z, ROS order (x, y, z, w).
    q_z90 = torch.tensor([0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)], dtype=dtype)
    R_z90 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    torch.testing.assert_close(g.quaternion_to_matrix(q_z90), R_z90, atol=1e-6, rtol=0)
    torch.testing.assert_close(g.matrix_to_quaternion(R_z90), q_z90, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_angle_is_the_geodesic(dtype):
    omega = _random_omegas(200, torch.float64, 7)
    R0 = g.so3_exp(torch.randn(200, 3, generator=_gen(8), dtype=torch.float64))
    R1 = g.so3_exp(omega) @ R0  # left perturbation by |omega|
    angle = g.rotation_angle(R0.to(dtype), R1.to(dtype))
    torch.testing.assert_close(angle.double(), omega.norm(dim=-1), atol=TOL[dtype] * 50, rtol=0)


def test_random_rotations_respect_max_angle_and_are_seeded():
    R = g.random_rotations_about_random_axes(500, math.radians(15), _gen(9), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    angles = g.rotation_angle(eye, R)
    assert angles.max() <= math.radians(15) + 1e-9
    assert angles.mean() == pytest.approx(math.radians(7.5), rel=0.1)
    R2 = g.random_rotations_about_random_axes(500, math.radians(15), _gen(9), dtype=torch.float64)
    torch.testing.assert_close(R, R2)


def test_gradients_are_finite_at_identity():
    omega = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    (g.so3_exp(omega).sum() + g.so3_log(g.so3_exp(omega)).sum()).backward()
    assert torch.isfinite(omega.grad).all()


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        g.so3_log(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="max_angle_rad"):
        g.random_rotations_about_random_axes(2, 4.0)

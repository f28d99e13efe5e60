"""The normal-equation solvers on a hand-made linear problem."""

from __future__ import annotations

import pytest
import torch

from gcf_ros.gcf.solver import SolverConfig, solve_update


def _problem():
    """A well-posed H (1, 6, 6) and g = H xi for a known xi."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    H = (A.T @ A)[None]
    xi = torch.tensor([[0.01, -0.02, 0.03, 0.05, -0.04, 0.02]], dtype=torch.float64)
    return H, (H @ xi[..., None])[..., 0], xi


def test_undamped_gauss_newton_solves_exactly():
    H, g, xi = _problem()
    out = solve_update(H, g, SolverConfig("gauss_newton", damping=0.0))
    torch.testing.assert_close(out, xi)


def test_rotation_damping_shrinks_only_the_rotation():
    H, g, _ = _problem()
    plain = solve_update(H, g, SolverConfig("gauss_newton", damping=0.0))
    damped = solve_update(H, g, SolverConfig("gauss_newton", damping=0.0, rotation_damping=1e6))
    assert damped[0, 3:].norm() < 1e-4 * plain[0, 3:].norm()
    # with the rotation pinned, translation is the least-squares fit of the rest
    t_only = torch.linalg.solve(H[0, :3, :3], g[0, :3])
    torch.testing.assert_close(damped[0, :3], t_only, rtol=1e-4, atol=1e-8)


def test_gradient_step_is_jacobi_preconditioned():
    H, g, _ = _problem()
    out = solve_update(H, g, SolverConfig("gradient", step=0.5))
    torch.testing.assert_close(
        out, 0.5 * g / torch.diagonal(H, dim1=-2, dim2=-1), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("kwargs", [{"kind": "newton"}, {"damping": -1}, {"rotation_damping": -1}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SolverConfig(**kwargs)

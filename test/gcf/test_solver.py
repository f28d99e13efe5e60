"""The solver on a hand-made linear problem: one term whose residuals are exactly linear in xi."""

from __future__ import annotations

import pytest
import torch

from gcf_ros.gcf.solver import SolverConfig, TermWeight, solve_terms
from gcf_ros.gcf.terms.base import Residuals


def _problem():
    """Residuals r = J xi (40 rows, 1-D) of a known xi, unit weights: H = J^T J is well posed."""
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(1, 40, 1, 6, generator=gen, dtype=torch.float64)
    xi = torch.tensor([[0.01, -0.02, 0.03, 0.05, -0.04, 0.02]], dtype=torch.float64)
    r = torch.einsum("bnki,bi->bnk", J, xi)
    w, one = torch.ones(1, 40, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    res = Residuals(r, J, w, torch.zeros(1, 40, 3, dtype=torch.float64), None, one)
    H, g, _ = res.normal_equations()
    return res, H, g, xi


def test_undamped_gauss_newton_solves_exactly():
    res, _, _, xi = _problem()
    torch.testing.assert_close(solve_terms([(res, TermWeight(1.0, 0.0))]), xi)


def test_rotation_damping_shrinks_only_the_rotation():
    res, H, g, _ = _problem()
    plain = solve_terms([(res, TermWeight(1.0, 0.0))])
    damped = solve_terms([(res, TermWeight(1.0, 0.0, rotation_damping=1e5))])
    assert damped[0, 3:].norm() < 1e-4 * plain[0, 3:].norm()
    # with the rotation pinned, translation is the least-squares fit of the rest (up to the eps
    # regulariser, 1e-9 of the largest diagonal entry: here the damped rotation's)
    t_only = torch.linalg.solve(H[0, :3, :3], g[0, :3])
    torch.testing.assert_close(damped[0, :3], t_only, rtol=1e-3, atol=1e-8)


def test_gradient_step_is_jacobi_preconditioned():
    res, H, g, _ = _problem()
    out = solve_terms([(res, TermWeight(1.0, 0.0))], "gradient", step=0.5)
    torch.testing.assert_close(
        out, 0.5 * g / torch.diagonal(H, dim1=-2, dim2=-1), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("kwargs", [{"kind": "newton"}, {"damping": -1}, {"rotation_damping": -1}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SolverConfig(**kwargs)

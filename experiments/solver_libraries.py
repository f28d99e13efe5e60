"""Should the solver use pypose (SE(3) LieTensors, a Levenberg-Marquardt optimiser with autograd
Jacobians) and roma (rotation conversions)? One Gauss-Newton/LM step at the refiner's sizes, timed
against the project's own code in the same process, and checked for the same answer.

    pip install pypose==0.9.5 roma==1.8.0          # not project dependencies
    python experiments/solver_libraries.py

Problem: B instances, N field rows each (S = 128 windows render ~1 500-3 000 object pixels),
residual r = F - (projection after the update - projection now) in window pixels, weights w.
"""

from __future__ import annotations

import time

import torch

from gcf_ros.core.geometry import so3_exp
from gcf_ros.gcf.solver import TermWeight, solve_terms
from gcf_ros.gcf.terms.base import point_residuals, predicted_measurement


def problem(B: int, N: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, 3, generator=gen, dtype=torch.float64) * 0.04
    T = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
    T[:, 2, 3] = 0.6
    K = torch.tensor([[600.0, 0, 64], [0, 600, 64], [0, 0, 1]], dtype=torch.float64).repeat(B, 1, 1)
    xi_true = torch.randn(B, 6, generator=gen, dtype=torch.float64) * 0.01
    zero = torch.zeros(B, 6, dtype=torch.float64)
    F = predicted_measurement(K, T, xi_true, X, None) - predicted_measurement(K, T, zero, X, None)
    w = torch.rand(B, N, generator=gen, dtype=torch.float64)
    return K, T, X, F, w, xi_true


def ours(K, T, X, F, w) -> torch.Tensor:
    return solve_terms([(point_residuals(K, T, X, F, w), TermWeight(1.0, 1e-6))])


def with_pypose(K, T, X, F, w) -> torch.Tensor:
    import pypose as pp

    B = X.shape[0]
    zero = torch.zeros(B, 6, dtype=torch.float64)
    target = predicted_measurement(K, T, zero, X, None) + F

    class Update(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.xi = pp.Parameter(torch.zeros(B, 6, dtype=torch.float64))

        def forward(self, _):
            return (predicted_measurement(K, T, self.xi, X, None) - target) * w[..., None].sqrt()

    model = Update()
    strategy = pp.optim.strategy.Constant(damping=1e-6)
    optimizer = pp.optim.LM(model, strategy=strategy)
    optimizer.step(input=None)
    return model.xi.detach()


def timed(fn, *args, repeat: int = 5) -> tuple[float, torch.Tensor]:
    out = fn(*args)
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args)
    return (time.perf_counter() - start) / repeat * 1e3, out


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'B':>3} {'N':>5} | ours ms | pypose LM ms | ratio | max |xi diff|")
    # pypose's LM builds the dense Jacobian of all B x N x 2 residuals against all B x 6
    # parameters: at B = 8, N = 2000 it took > 21 GB here and was killed, so not run.
    for B, N in ((1, 2000), (1, 500), (4, 200)):
        args = problem(B, N)[:5]
        t_ours, xi_ours = timed(ours, *args)
        t_pp, xi_pp = timed(with_pypose, *args, repeat=2)
        diff = float((xi_ours - xi_pp).abs().max())
        print(f"{B:>3} {N:>5} | {t_ours:7.2f} | {t_pp:12.1f} | {t_pp / t_ours:5.0f} | {diff:.1e}")
    import roma

    omega = torch.randn(4096, 3, dtype=torch.float64) * 0.3
    t_so3, R1 = timed(so3_exp, omega, repeat=50)
    t_roma, R2 = timed(roma.rotvec_to_rotmat, omega, repeat=50)
    print(
        f"so3_exp vs roma.rotvec_to_rotmat, 4096 rotations: {t_so3:.3f} vs {t_roma:.3f} ms, "
        f"max difference {float((R1 - R2).abs().max()):.1e}"
    )


if __name__ == "__main__":
    main()

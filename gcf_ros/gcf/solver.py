"""From correspondences to a pose update: the learned backward pass (docs/design.md §2, steps 4-5).

Each foreground pixel p contributes its field vector F_p (window pixels) and weight w_p; its image
motion under a pose update xi is J_p xi with J_p = d(u, v)/dxi (:func:`update_jacobian`). Two
solvers:

- ``gauss_newton``: the damped, weighted least-squares step
  xi = (sum_p w_p J_p^T J_p + D + eps I)^-1 sum_p w_p J_p^T F_p (Levenberg-Marquardt), with
  D = lambda diag(H) + lambda_rot diag(H)[rotation]: the extra rotation damping lambda_rot shrinks
  the weakly observed rotation (out-of-plane rotation moves few pixels far) towards zero, so a
  noisy field spends its error on rotation only as far as the data supports it.
- ``gradient``: the paper's gradient step on the pose, g = sum_p w_p J_p^T F_p (minus the loss
  gradient), scaled per parameter by the inverse diagonal of H (Jacobi preconditioning) so that one
  step size serves translation (metres) and rotation (radians) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gcf_ros.gcf.terms.base import Residuals

SOLVERS = ("gauss_newton", "gradient")


@dataclass(frozen=True)
class SolverConfig:
    """kind: ``gauss_newton`` or ``gradient``; damping: LM lambda; rotation_damping: extra lambda on
    the rotation block; step: gradient step size."""

    kind: str = "gauss_newton"
    damping: float = 1e-3
    step: float = 0.3
    rotation_damping: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.kind!r}")
        if self.damping < 0 or self.rotation_damping < 0 or self.step <= 0:
            raise ValueError("damping and rotation_damping must be >= 0, step > 0")


@dataclass(frozen=True)
class TermWeight:
    """How the solver weighs one term: its scale against the other terms, and its
    Levenberg-Marquardt damping: a prior towards a zero update with the strength ``damping`` x
    this term's own diag(H) (``rotation_damping`` more on the rotation block). The prior acts on
    the common solution, so a term damped in rotation (a biased field) holds the rotation back
    until the other terms' rotation evidence outweighs it: their scale sets that balance."""

    scale: float = 1.0
    damping: float = 0.0
    rotation_damping: float = 0.0

    def __post_init__(self) -> None:
        if self.scale < 0 or self.damping < 0 or self.rotation_damping < 0:
            raise ValueError("scale, damping and rotation_damping must be >= 0")


def solve_terms(
    systems: Sequence[tuple[Residuals, TermWeight]],
    kind: str = "gauss_newton",
    step: float = 0.3,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The pose update xi (B, 6) float64 from several terms' residuals (``gcf_ros.gcf.terms``).

    Each term's normal equations are divided by its total weight per instance and multiplied by
    its scale and its per-instance confidence, then summed with the term's own damping:
    ``A = sum_t s_t c_t (H_t + D_t) / n_t``, ``b = sum_t s_t c_t g_t / n_t``. ``gauss_newton``
    solves A xi = b; ``gradient`` takes the Jacobi-preconditioned step ``step * b / diag(A)``. With
    one term these are the two solvers of the module docstring.

    Devices: each term's H (B, 6, 6), g (B, 6) and n (B,) are formed on its rows' device (the
    heavy part: sums over the rows); they are then gathered on ``device`` (None: the first term's),
    where the 6 x 6 systems are solved and xi is returned.
    """
    if kind not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {kind!r}")
    if device is None and systems:
        device = systems[0][0].r.device
    A = b = None
    for res, tw in systems:
        H, g, n = (x.to(device) for x in res.normal_equations())
        conf = res.confidence.to(device)
        f = (tw.scale * conf / n.clamp_min(1e-12))[:, None]
        f = torch.where(n[:, None] > 0, f, torch.zeros_like(f))
        diag = torch.diagonal(H, dim1=-2, dim2=-1)
        d = torch.full_like(diag, tw.damping)
        d[..., 3:] += tw.rotation_damping
        if kind == "gradient":
            H = torch.diag_embed(diag * (1.0 + d - tw.damping))  # Jacobi: diag only, rot damped
        else:
            H = H + torch.diag_embed(d * diag)
        A = H * f[..., None] if A is None else A + H * f[..., None]
        b = g * f if b is None else b + g * f
    if A is None:
        raise ValueError("solve_terms needs at least one term")
    diag = torch.diagonal(A, dim1=-2, dim2=-1)
    eps = 1e-9 * diag.amax(-1, keepdim=True).clamp_min(1e-12)
    if kind == "gradient":
        return step * b / (diag + eps)
    return torch.linalg.solve(A + torch.diag_embed(eps.expand_as(diag)), b[..., None])[..., 0]

"""Pose-level training signal: the error left after one Gauss–Newton step on the predicted field.

The refiner does not use the field pixel by pixel: it solves the weighted least-squares problem
(``gcf_ros.gcf.solver``) for a 6-DoF update. A field whose per-pixel error is small but
*structured* (the same direction over the silhouette of an out-of-plane rotation, say) can still
give a wrong rotation, and the end-point error does not see that. This loss does: it solves the
damped normal equations with the predicted field and weights — exactly the refiner's step, in
float64 and differentiable — applies the update to T0, and measures how far the rendered surface
points then project from where they project at T*, in window pixels. Its gradient reaches the field
and the weight head through ``torch.linalg.solve``, so the network learns to predict fields whose
least-squares pose is right, and to down-weight the pixels it cannot place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gcf_ros.core.camera import project
from gcf_ros.core.geometry import rotation_angle, se3_apply
from gcf_ros.core.pose_update import apply_update
from gcf_ros.gcf.solver import TermWeight, solve_terms
from gcf_ros.gcf.terms.base import point_residuals


@dataclass(frozen=True)
class OneStepResult:
    """Per-sample results of one solver step (B,): reprojection error of the foreground points
    after the step (window px; differentiable), at T0 (px), and the rotation error after the step
    (degrees; differentiable)."""

    error_px: torch.Tensor
    error0_px: torch.Tensor
    rotation_deg: torch.Tensor


def one_step_error(
    field: torch.Tensor,
    weight: torch.Tensor,
    render: torch.Tensor,
    mask: torch.Tensor,
    T_init: torch.Tensor,
    T_true: torch.Tensor,
    K_window: torch.Tensor,
    diameter: torch.Tensor,
    damping: float,
    max_pixels: int | None = None,
    generator: torch.Generator | None = None,
) -> OneStepResult:
    """Errors after one damped Gauss–Newton step from T0 with a predicted field.

    Args:
        field: (B, 2, S, S) predicted field, window pixels.
        weight: (B, 1, S, S) or (B, S, S) predicted per-pixel weight in [0, 1].
        render: (B, 10, S, S) rendering-branch input at T0 (channels 0-2: location / diameter).
        mask: (B, S, S) bool, the T0 rendering's foreground.
        T_init, T_true: (B, 4, 4) camera-from-object poses T0 and T*, metres.
        K_window: (B, 3, 3) window camera.
        diameter: (B,) model diameters, metres.
        damping: Levenberg–Marquardt lambda of the step (no extra rotation damping).
        max_pixels: solve on at most this many foreground pixels per sample, drawn at random
            (``generator``); None: all of them. The normal equations need far fewer than S².
    """
    B, _, S, _ = field.shape
    dt = torch.float64
    flat_mask = mask.reshape(B, S * S)
    idx = _pixel_subset(flat_mask, max_pixels, generator)  # (B, n)
    m = torch.gather(flat_mask, 1, idx).to(dt)

    def take(x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, n, C)
        flat = x.reshape(B, x.shape[1], S * S)
        return torch.gather(flat, 2, idx[:, None].expand(-1, x.shape[1], -1)).transpose(1, 2)

    X_obj = take(render[:, :3]).to(dt) * diameter.to(dt)[:, None, None]
    T0, Tt, K = T_init.to(dt), T_true.to(dt), K_window.to(dt)
    F = take(field).to(dt)
    w = take(weight.reshape(B, 1, S, S))[..., 0].to(dt) * m
    # The refiner's own field term and solver (gcf_ros.gcf.terms, gcf_ros.gcf.solver).
    residuals = point_residuals(K, T0, X_obj, F, w)
    xi = solve_terms([(residuals, TermWeight(1.0, damping))])
    T1 = apply_update(T0, xi)
    target = project(K, se3_apply(Tt, X_obj))
    count = m.sum(1).clamp_min(1.0)

    def reprojection(T: torch.Tensor) -> torch.Tensor:
        err = (project(K, se3_apply(T, X_obj)) - target).norm(dim=-1)
        return (err * m).sum(1) / count

    rot = torch.rad2deg(rotation_angle(T1[:, :3, :3], Tt[:, :3, :3]))
    return OneStepResult(reprojection(T1), reprojection(T0).detach(), rot)


def _pixel_subset(
    flat_mask: torch.Tensor, max_pixels: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, n) pixel indices: every foreground pixel first (n = the most foreground pixels in the
    batch), or ``max_pixels`` of them at random; padding indices point at background pixels."""
    B, N = flat_mask.shape
    score = flat_mask.to(torch.float32)
    if max_pixels is not None:
        noise = torch.rand(B, N, generator=generator, device="cpu").to(flat_mask.device)
        score = score + noise  # foreground (1 + U) ranks above background (U)
    n = int(flat_mask.sum(1).max().clamp_min(1))
    if max_pixels is not None:
        n = min(n, max_pixels)
    return torch.topk(score, n, dim=1, sorted=False).indices


def saturate(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(x / cap): linear for x << cap, bounded by cap (hopeless samples stop pulling)."""
    return cap * torch.tanh(x / cap)

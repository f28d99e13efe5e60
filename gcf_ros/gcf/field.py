"""Ground-truth correspondence fields.

For every foreground pixel p of the rendering at the current pose T0, with object point X_p (the
location field), the true field is F*_p = pi(K_window, T* X_p) - p: where that surface point lies in
the image under the true pose T*, minus p, in window pixels. Exact by construction (no occlusion
reasoning is needed: the field is defined for the rendered surface point whether or not it is
visible in the real image).
"""

from __future__ import annotations

import torch

from gcf_ros.core.camera import project
from gcf_ros.core.geometry import se3_apply
from gcf_ros.core.render.types import RenderOutput


def pixel_grid(size: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """(S, S, 2) window pixel centres (u, v) = (column, row)."""
    r = torch.arange(size, dtype=dtype, device=device)
    v, u = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([u, v], dim=-1)


def true_field(render: RenderOutput, T_true: torch.Tensor, K_window: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 2) ground-truth field in window pixels (0 on background).

    ``render`` is the rendering at the current pose; T_true (B, 4, 4), K_window (B, 3, 3).
    """
    B, S = render.batch_size, render.size
    X_obj = render.xyz_obj.double().reshape(B, S * S, 3)
    X_cam = se3_apply(T_true.double(), X_obj)
    uv = project(K_window.double(), X_cam).reshape(B, S, S, 2)
    field = uv - pixel_grid(S, torch.float64, uv.device)
    field = torch.where(render.mask[..., None], field, torch.zeros_like(field))
    return field.to(torch.float32)

"""Lambert shading of interpolated vertex attributes, shared by the torch renderers."""

from __future__ import annotations

import torch

from gcf_ros.core.render.types import Shading

__all__ = ["shade", "unit"]


def shade(
    attrs: torch.Tensor, T: torch.Tensor, shading: Shading
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambert-shaded colours and unit camera-frame normals (B, ..., 3) from interpolated
    attributes (B, ..., 9) = [xyz_obj | normal_obj | colour] and poses T (B, 4, 4)."""
    R, t = T[:, :3, :3], T[:, :3, 3]
    X_cam = torch.einsum("bij,b...j->b...i", R, attrs[..., :3])
    X_cam = X_cam + t.reshape(t.shape[0], *([1] * (attrs.ndim - 2)), 3)
    normals = unit(torch.einsum("bij,b...j->b...i", R, attrs[..., 3:6]))
    if shading.light_dir_cam is None:
        light = -unit(X_cam)  # headlight: towards the camera centre
    else:
        light = unit(torch.tensor(shading.light_dir_cam, dtype=T.dtype, device=T.device))
    lambert = (normals * light).sum(-1, keepdim=True).clamp_min(0.0)
    rgb = attrs[..., 6:9] * (shading.ambient + shading.diffuse * lambert)
    return rgb.clamp(0.0, 1.0), normals


def unit(v: torch.Tensor) -> torch.Tensor:
    """Rows of v (..., 3) scaled to unit length; zero rows stay zero (with finite gradients)."""
    n2 = (v * v).sum(-1, keepdim=True)
    return v * torch.rsqrt(n2.clamp_min(1e-24))

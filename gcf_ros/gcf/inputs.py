"""What the correspondence network sees, built the same way for training and for refinement.

The image branch gets the S x S image window; the rendering branch gets ``RENDER_CHANNELS`` = 10
channels from a ``RenderOutput`` at the current pose: the location field divided by the model's
diameter (3), the camera-frame normals (3), the shaded vertex colour (3) and the mask (1).
"""

from __future__ import annotations

import torch

from gcf_ros.core.render.types import RenderOutput

RENDER_CHANNELS = 10
IMAGE_CHANNELS = 3


def render_input(render: RenderOutput, diameters: torch.Tensor) -> torch.Tensor:
    """(B, 10, S, S) float32 rendering-branch input; ``diameters`` (B,) metres."""
    scale = (1.0 / diameters.to(render.xyz_obj)).view(-1, 1, 1, 1)
    mask = render.mask.to(render.xyz_obj.dtype)[..., None]
    stacked = torch.cat([render.xyz_obj * scale, render.normals_cam, render.rgb, mask], dim=-1)
    return stacked.permute(0, 3, 1, 2).contiguous()


def image_input(windows_rgb_u8: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 image windows -> (B, 3, S, S) float32 in [0, 1]."""
    if windows_rgb_u8.dtype != torch.uint8 or windows_rgb_u8.shape[-1] != IMAGE_CHANNELS:
        raise ValueError(f"expected (B, S, S, 3) uint8 windows, got {tuple(windows_rgb_u8.shape)}")
    return windows_rgb_u8.permute(0, 3, 1, 2).float().div_(255.0).contiguous()

"""A renderer whose outputs live on another device than the one it renders on.

The refinement loop's field term and solve run on the rendering's device (gcf_ros/gcf/refiner.py,
"Devices"), so the device of a renderer's output decides where they run:

- ``DeviceRenderer(RaycastRenderer(), "cuda")``: open3d ray casting on the CPU, solve on the GPU;
- ``DeviceRenderer(PyTorch3DRenderer(device="cuda"), "cpu")``: rasterization on the GPU, solve on
  the CPU (one copy of the S x S windows back per iteration: ~44 bytes per pixel, 2.9 MB for 16
  windows of 64 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from gcf_ros.core.render.types import Renderer, RenderOutput, Shading

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel


class DeviceRenderer:
    """Renders with ``inner`` and returns the output on ``device`` (a ``Renderer``).

    Attributes:
        inner: the renderer that does the work (on its own device).
        device: where ``render``'s outputs are put.
    """

    def __init__(self, inner: Renderer, device: str | torch.device) -> None:
        self.inner = inner
        self.device = torch.device(device)

    def render(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        shading: Shading | None = None,
    ) -> RenderOutput:
        """``inner.render`` (see ``Renderer.render``), moved to ``self.device``."""
        return self.inner.render(models, T_cam_obj, K_window, size, shading).to(self.device)

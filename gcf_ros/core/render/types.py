"""The renderer interface and its typed output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel


@dataclass(frozen=True)
class Shading:
    """Lambertian shading of vertex colours: rgb = colour * (ambient + diffuse * max(0, n . l)).

    ``light_dir_cam`` is the unit direction *towards* the light in the camera frame; None means a
    headlight (light at the camera centre, l = -ray direction).
    """

    ambient: float = 0.45
    diffuse: float = 0.55
    light_dir_cam: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class RenderOutput:
    """What every renderer returns for B windows of S x S pixels (float32 unless stated).

    Background pixels hold 0 in every field. Pixel (i, j) is row i, column j; its centre is at
    window coordinates (u, v) = (j, i).

    Attributes:
        mask: (B, S, S) bool, True where the object is visible.
        depth: (B, S, S) camera-frame z of the visible surface, metres.
        xyz_obj: (B, S, S, 3) the object-frame point seen at each pixel (the "location field"),
            metres.
        normals_cam: (B, S, S, 3) unit surface normals in the camera frame, interpolated from the
            vertex normals.
        rgb: (B, S, S, 3) shaded vertex colour in [0, 1].
    """

    mask: torch.Tensor
    depth: torch.Tensor
    xyz_obj: torch.Tensor
    normals_cam: torch.Tensor
    rgb: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    @property
    def size(self) -> int:
        return self.mask.shape[-1]

    def to(self, device: torch.device | str) -> RenderOutput:
        return RenderOutput(*(getattr(self, f).to(device) for f in _FIELDS))


_FIELDS = ("mask", "depth", "xyz_obj", "normals_cam", "rgb")


class Renderer(Protocol):
    """Renders B (model, pose, window camera) triples into S x S windows."""

    def render(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        shading: Shading | None = None,
    ) -> RenderOutput:
        """Render ``models[b]`` at pose ``T_cam_obj[b]`` (B, 4, 4) seen through ``K_window[b]``
        (B, 3, 3) into ``size`` x ``size`` windows. Tensors may be float32 or float64; outputs
        are float32 on the renderer's device."""
        ...

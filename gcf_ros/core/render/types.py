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

    @classmethod
    def empty(cls, batch: int, size: int, device: torch.device | str = "cpu") -> RenderOutput:
        """All-background windows (B, S, S), each field its own zero tensor (writable)."""
        mask = torch.zeros(batch, size, size, dtype=torch.bool, device=device)
        depth = torch.zeros(batch, size, size, device=device)
        xyz, normals, rgb = torch.zeros(3, batch, size, size, 3, device=device).unbind(0)
        return cls(mask, depth, xyz, normals, rgb)


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


def checked_inputs(
    models: Sequence[ObjectModel], T_cam_obj, K_window, size, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``Renderer.render``'s arguments checked: (B, 4, 4) and (B, 3, 3) float32 tensors on
    ``device``, and the window size as an int (ValueError naming what is wrong)."""
    T = torch.as_tensor(T_cam_obj).to(device, torch.float32)
    K = torch.as_tensor(K_window).to(device, torch.float32)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"T_cam_obj must have shape (B, 4, 4), got {tuple(T.shape)}")
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"K_window must have shape (B, 3, 3), got {tuple(K.shape)}")
    if not len(models) == len(T) == len(K):
        raise ValueError(f"got {len(models)} models, {len(T)} poses, {len(K)} cameras")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return T, K, int(size)

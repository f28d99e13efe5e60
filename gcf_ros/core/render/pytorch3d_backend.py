"""PyTorch3D renderer: hard rasterization for ``RenderOutput``, soft rasterization for gradients.

The mesh stays in the object frame and the camera is built from ``T_cam_obj`` and the window
matrix ``K_window`` with ``pytorch3d.utils.cameras_from_opencv_projection``. That function puts
pixel *corners* at integer coordinates (pixel j spans [j, j + 1]), whereas this package puts pixel
*centres* there; the principal point is therefore shifted by +0.5 px before the conversion (see
``opencv_cameras``). The conversion also flips the camera x and y axes (PyTorch3D's view frame is
x left, y up, z forward) and puts NDC at 2 / S per pixel for square windows; view-space z, and so
``zbuf``, is the OpenCV camera z.

Runs on CPU and CUDA. ``bin_size=0`` selects naive rasterization (every pixel tests every face),
which is exact, and the only mode on CPU; on CUDA ``bin_size=None`` lets PyTorch3D pick
coarse-to-fine bins, faster for large windows. The CPU rasterizer is slow (forward ~ S^2 x faces,
backward ~10 us per fragment, i.e. per pixel and face within the blur radius): use decimated
meshes (0.5-2k faces) and small windows (<= 96 px) for the differentiable baselines.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer import (
    BlendParams,
    MeshRasterizer,
    PerspectiveCameras,
    RasterizationSettings,
    SoftSilhouetteShader,
    softmax_rgb_blend,
)
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes
from pytorch3d.utils import cameras_from_opencv_projection

from gcf_ros.core.render.shading import shade as _shade
from gcf_ros.core.render.types import RenderOutput, Shading, checked_inputs

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel

__all__ = ["PyTorch3DRenderer", "opencv_cameras", "soft_sigma"]

_SIGMOID_CUTOFF = math.log(1.0 / 1e-4 - 1.0)  # faces beyond this many sigmas contribute < 1e-4
_SOFT_FACES_START = 64  # first faces_per_pixel tried by the automatic soft rasterization
_SOFT_FACES_MAX = 512


@dataclass(frozen=True)
class _MeshTensors:
    """A model's mesh on the renderer's device; ``attrs`` = [verts_obj | normals_obj | colours]."""

    model: ObjectModel  # keeps id(model) valid while cached
    verts: torch.Tensor  # (V, 3) float32
    faces: torch.Tensor  # (F, 3) int64
    attrs: torch.Tensor  # (V, 9) float32


def opencv_cameras(
    T_cam_obj: torch.Tensor, K_window: torch.Tensor, size: int
) -> PerspectiveCameras:
    """PyTorch3D cameras for OpenCV poses (B, 4, 4) and window matrices (B, 3, 3), S x S pixels.

    ``cameras_from_opencv_projection`` puts pixel centres at half-integers; adding 0.5 px to
    (cx, cy) makes an OpenCV projection u = j land on the centre of column j. Differentiable
    with respect to ``T_cam_obj`` (and ``K_window``).
    """
    B = T_cam_obj.shape[0]
    shift = torch.zeros(3, 3, dtype=K_window.dtype, device=K_window.device)
    shift[0, 2] = shift[1, 2] = 0.5
    image_size = torch.tensor([[size, size]], device=T_cam_obj.device).expand(B, 2)
    return cameras_from_opencv_projection(
        T_cam_obj[:, :3, :3], T_cam_obj[:, :3, 3], K_window + shift, image_size
    )


def soft_sigma(size: int, edge_px: float = 1.0) -> float:
    """The soft-rasterizer sigma (squared NDC units) at which a pixel ``edge_px`` window pixels
    outside a face still gets weight sigmoid(-1) = 0.27 in an S = ``size`` window: (2 edge_px /
    S)^2. About 1e-3 at S = 64; smaller values make edges narrower than a pixel, and the
    silhouette (and its gradients) alias as the object moves by fractions of a pixel."""
    return (2.0 * edge_px / size) ** 2


class PyTorch3DRenderer:
    """Renders ``RenderOutput`` windows with PyTorch3D's hard ``MeshRasterizer``, and soft
    (differentiable) silhouettes and shaded colours for the gradient-based baselines.

    Args:
        device: where mesh tensors are cached, rasterization runs and outputs live.
        faces_per_pixel: faces kept per pixel by the hard rasterizer of ``render``; only the
            nearest is used, so 1 is enough.
        bin_size: 0 (default) for naive rasterization, exact and the only mode on CPU; ``None``
            for PyTorch3D's coarse-to-fine heuristic (CUDA, large windows); > 0 a fixed bin size.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        faces_per_pixel: int = 1,
        bin_size: int | None = 0,
    ) -> None:
        if faces_per_pixel < 1:
            raise ValueError(f"faces_per_pixel must be >= 1, got {faces_per_pixel}")
        self.device = torch.device(device)
        self.faces_per_pixel = int(faces_per_pixel)
        self.bin_size = bin_size
        self._meshes: dict[int, _MeshTensors] = {}
        self._soft_faces = _SOFT_FACES_START

    def render(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        shading: Shading | None = None,
    ) -> RenderOutput:
        """See ``Renderer.render``. Hard rasterization (no blur, no culling), not differentiable;
        outputs are float32 (mask bool) on ``self.device``."""
        T, K, S = checked_inputs(models, T_cam_obj, K_window, size, self.device)
        if len(models) == 0:
            return RenderOutput.empty(0, S, self.device)
        with torch.no_grad():
            fragments, face_attrs = self._rasterize(models, T, K, S, None, None)
            pix_to_face = fragments.pix_to_face[..., :1]
            attrs = interpolate_face_attributes(
                pix_to_face, fragments.bary_coords[..., :1, :], face_attrs
            )[..., 0, :]  # (B, S, S, 9)
            mask = pix_to_face[..., 0] >= 0
            rgb, normals_cam = _shade(attrs, T, shading or Shading())
            keep = mask[..., None]
            return RenderOutput(
                mask=mask,
                depth=torch.where(mask, fragments.zbuf[..., 0], 0.0),
                xyz_obj=torch.where(keep, attrs[..., :3], 0.0),
                normals_cam=torch.where(keep, normals_cam, 0.0),
                rgb=torch.where(keep, rgb, 0.0),
            )

    def render_soft_silhouette(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        sigma: float = 1e-4,
        faces_per_pixel: int | None = None,
    ) -> torch.Tensor:
        """Soft silhouettes (B, S, S) in [0, 1] (``SoftSilhouetteShader``), differentiable with
        respect to ``T_cam_obj``.

        alpha = 1 - prod_k (1 - sigmoid(-d_k / sigma)) over the faces within the blur radius
        (log(1e4 - 1) * sigma), d_k the signed squared distance from the pixel centre to face k in
        NDC units, where a pixel is 2 / S wide: sigma = 1e-4 makes edges ~0.3 px wide at S = 64,
        which aliases under sub-pixel motion; ``soft_sigma(S)`` (~1e-3 there) is smooth.

        PyTorch3D keeps only the ``faces_per_pixel`` faces nearest in z; when faces within the
        radius are dropped, the interior gets holes and the gradients are biased. ``None`` (the
        default) chooses it: from the power of two that sufficed in the previous call (at least
        64), it doubles, up to 512, until no pixel that is not already opaque has every slot
        filled. Slots that no pixel uses are dropped before shading and blending.
        """
        T, K, S = checked_inputs(models, T_cam_obj, K_window, size, self.device)
        _check_soft(models, sigma, 1.0, faces_per_pixel)
        fragments, _ = self._rasterize(models, T, K, S, sigma, faces_per_pixel)
        shader = SoftSilhouetteShader(blend_params=BlendParams(sigma=sigma))
        return shader(fragments, None)[..., 3]

    def render_soft_rgb(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        sigma: float = 1e-4,
        gamma: float = 1e-4,
        shading: Shading | None = None,
        faces_per_pixel: int | None = None,
        znear: float = 0.01,
        zfar: float = 10.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-rasterized shaded vertex colours: rgb (B, S, S, 3) and alpha (B, S, S).

        Each fragment (sigma, ``faces_per_pixel``: see ``render_soft_silhouette``) is shaded
        exactly like ``render`` (Lambert with ``shading``, per-fragment normal and headlight) and
        the fragments are blended by ``softmax_rgb_blend`` (SoftRas) with weights
        sigmoid(-d / sigma) * exp(z_inv / gamma), z_inv = (zfar - z) / (zfar - znear), on black.
        Unlike ``SoftPhongShader`` there is no specular term and no light to approximate
        ``Shading``: where the nearest face covers the pixel and sigma, gamma are small, rgb
        equals ``render``'s. rgb is *not* premultiplied by alpha.
        """
        T, K, S = checked_inputs(models, T_cam_obj, K_window, size, self.device)
        _check_soft(models, sigma, gamma, faces_per_pixel)
        fragments, face_attrs = self._rasterize(models, T, K, S, sigma, faces_per_pixel)
        attrs = interpolate_face_attributes(
            fragments.pix_to_face, fragments.bary_coords, face_attrs
        )  # (B, S, S, faces per pixel, 9)
        colors, _ = _shade(attrs, T, shading or Shading())
        params = BlendParams(sigma=sigma, gamma=gamma, background_color=(0.0, 0.0, 0.0))
        rgba = softmax_rgb_blend(colors, fragments, params, znear=znear, zfar=zfar)
        return rgba[..., :3], rgba[..., 3]

    def _rasterize(
        self,
        models: Sequence[ObjectModel],
        T: torch.Tensor,
        K: torch.Tensor,
        size: int,
        sigma: float | None,
        k: int | None,
    ) -> tuple[Fragments, torch.Tensor]:
        """Fragments of the batch and the packed face attributes (sum F, 3, 9). ``sigma`` None:
        hard (no blur, ``self.faces_per_pixel``); else the blur radius of sigma with ``k`` faces
        per pixel, or, k None, the automatic choice described in ``render_soft_silhouette``."""
        parts = [self._mesh(model) for model in models]
        meshes = Meshes(verts=[p.verts for p in parts], faces=[p.faces for p in parts])
        face_attrs = torch.cat([p.attrs for p in parts])[meshes.faces_packed()]  # packed order
        cameras = opencv_cameras(T, K, size)
        if sigma is None:
            return self._fragments(meshes, cameras, size, 0.0, self.faces_per_pixel), face_attrs
        auto, k = k is None, k or self._soft_faces
        fragments = self._fragments(meshes, cameras, size, _blur_radius(sigma), k)
        while auto and _truncated(fragments, sigma):
            if k >= _SOFT_FACES_MAX:
                warnings.warn(
                    f"soft rasterization: {k} faces per pixel still drop faces within the blur "
                    f"radius (sigma={sigma:g}); use a smaller sigma or a decimated mesh",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            k = min(2 * k, _SOFT_FACES_MAX)
            fragments = self._fragments(meshes, cameras, size, _blur_radius(sigma), k)
        used = max(int((fragments.pix_to_face >= 0).sum(-1).max()), 1)
        if auto:  # the next call starts from the power of two that sufficed here
            self._soft_faces = max(_SOFT_FACES_START, 1 << (used - 1).bit_length())
        return _first_slots(fragments, used), face_attrs

    def _fragments(
        self, meshes: Meshes, cameras: PerspectiveCameras, size: int, blur: float, k: int
    ) -> Fragments:
        """Rasterize (naive when bin_size is 0), keeping k faces per pixel."""
        settings = RasterizationSettings(
            image_size=size,
            blur_radius=blur,
            faces_per_pixel=k,
            bin_size=self.bin_size,
            perspective_correct=True,
            cull_backfaces=False,
        )
        return MeshRasterizer(cameras, settings)(meshes)

    def _mesh(self, model: ObjectModel) -> _MeshTensors:
        """The model's tensors on the device, cached by ``id(model)``."""
        cached = self._meshes.get(id(model))
        if cached is None or cached.model is not model:
            dev = self.device
            verts = torch.tensor(model.verts_obj, dtype=torch.float32, device=dev)
            normals = torch.tensor(model.vert_normals_obj, dtype=torch.float32, device=dev)
            colors = torch.tensor(model.vert_colors, dtype=torch.float32, device=dev)
            faces = torch.tensor(model.faces, dtype=torch.int64, device=dev)
            attrs = torch.cat([verts, normals, colors], dim=1)
            cached = _MeshTensors(model, verts, faces, attrs)
            self._meshes[id(model)] = cached
        return cached


def _truncated(fragments: Fragments, sigma: float) -> bool:
    """Whether a pixel filled every slot (so faces may have been dropped) without being opaque
    (transmittance prod(1 - p_k) > 1e-4) already, i.e. whether dropped faces could matter."""
    with torch.no_grad():
        full = fragments.pix_to_face[..., -1] >= 0
        if not bool(full.any()):
            return False
        prob = torch.sigmoid(-fragments.dists[full] / sigma)
        return bool((torch.prod(1.0 - prob, dim=-1) > 1e-4).any())


def _first_slots(fragments: Fragments, k: int) -> Fragments:
    """The k nearest fragments per pixel (slots are filled in z order, empty ones at the end)."""
    return Fragments(
        pix_to_face=fragments.pix_to_face[..., :k],
        zbuf=fragments.zbuf[..., :k],
        bary_coords=fragments.bary_coords[..., :k, :],
        dists=fragments.dists[..., :k],
    )


def _blur_radius(sigma: float) -> float:
    """Squared NDC distance beyond which a face's sigmoid weight is below 1e-4."""
    return _SIGMOID_CUTOFF * sigma


def _check_soft(models: Sequence[ObjectModel], sigma: float, gamma: float, k: int | None) -> None:
    if len(models) == 0:
        raise ValueError("soft rendering needs at least one model")
    if not (sigma > 0 and gamma > 0):
        raise ValueError(f"sigma and gamma must be > 0, got sigma={sigma}, gamma={gamma}")
    if k is not None and k < 1:
        raise ValueError(f"faces_per_pixel must be >= 1 or None, got {k}")

"""CPU renderer by ray casting with open3d's ``RaycastingScene`` (Embree BVH).

One ray per window pixel centre, cast in the object frame, so the scene (BVH) of each model is
built once and reused for every pose. Casting a 128 x 128 window costs about a millisecond per
model; this is the renderer of the GCF refinement loop, which needs no gradients from rendering.
open3d is imported when a renderer is made: this module imports without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from gcf_ros.core._open3d import require_open3d
from gcf_ros.core.render.types import RenderOutput, Shading

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel


def _open3d() -> ModuleType:
    """open3d, or an ImportError saying that ray casting needs it."""
    return require_open3d(
        "ray casting (RaycastRenderer, the refiner's default renderer)",
        "choose another renderer (gcf_ros.core.render.make_renderer, or the Refiner's renderer "
        "argument)",
    )


class _ModelScene:
    """A model's BVH plus the per-vertex attributes interpolated at hits."""

    def __init__(self, model: ObjectModel) -> None:
        o3d = _open3d()
        self.model = model  # keeps id(model) valid while cached
        self.tensor = o3d.core.Tensor
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(model.verts_obj, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(model.faces, dtype=np.uint32)),
        )
        self.faces = np.asarray(model.faces, dtype=np.int64)
        self.verts = np.asarray(model.verts_obj, dtype=np.float64)
        self.normals = np.asarray(model.vert_normals_obj, dtype=np.float64)
        self.colors = np.asarray(model.vert_colors, dtype=np.float64)


class RaycastRenderer:
    """Renders ``RenderOutput`` windows by casting rays through open3d's ``RaycastingScene``.

    Args:
        nthreads: threads for ray casting (0: all cores).

    Raises:
        ImportError: open3d does not import (it is checked here, not at the first render).
    """

    def __init__(self, nthreads: int = 0) -> None:
        _open3d()
        self.nthreads = nthreads
        self._scenes: dict[int, _ModelScene] = {}

    def _scene(self, model: ObjectModel) -> _ModelScene:
        key = id(model)
        if key not in self._scenes:
            self._scenes[key] = _ModelScene(model)
        return self._scenes[key]

    def render(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        shading: Shading | None = None,
    ) -> RenderOutput:
        """See ``Renderer.render``. Outputs are float32 CPU tensors."""
        T = _as_batch(T_cam_obj, (4, 4), "T_cam_obj")
        K = _as_batch(K_window, (3, 3), "K_window")
        if not len(models) == len(T) == len(K):
            raise ValueError(f"got {len(models)} models, {len(T)} poses, {len(K)} cameras")
        shading = shading or Shading()
        S = int(size)
        out = _empty_output(len(models), S)
        rays_cam = _pixel_rays(S)  # (S*S, 3), z = 1
        for b, model in enumerate(models):
            self._render_one(self._scene(model), T[b], K[b], rays_cam, shading, out, b)
        return RenderOutput(**{k: torch.from_numpy(v) for k, v in out.items()})

    def _render_one(self, ms, T, K, rays_px, shading, out, b) -> None:
        R, t = T[:3, :3], T[:3, 3]
        dirs_cam = rays_px @ np.linalg.inv(K).T  # z_cam = 1, so t_hit is the depth
        origin_obj = -R.T @ t
        dirs_obj = dirs_cam @ R  # R^T d for row vectors
        rays = np.empty((len(dirs_obj), 6), dtype=np.float32)
        rays[:, :3] = origin_obj
        rays[:, 3:] = dirs_obj
        hit = self._cast(ms, rays)
        if hit is None:
            return
        idx, depth, tri, bary = hit
        S = out["mask"].shape[-1]
        rows, cols = np.divmod(idx, S)
        xyz = origin_obj + depth[:, None] * dirs_obj[idx]
        normals_obj = _interp(ms.normals, tri, bary)
        normals_cam = normals_obj @ R.T
        normals_cam /= np.linalg.norm(normals_cam, axis=1, keepdims=True).clip(1e-12)
        light = _light_dirs(shading, dirs_cam[idx])
        lambert = np.clip((normals_cam * light).sum(1), 0.0, None)
        rgb = _interp(ms.colors, tri, bary) * (shading.ambient + shading.diffuse * lambert)[:, None]
        out["mask"][b, rows, cols] = True
        out["depth"][b, rows, cols] = depth
        out["xyz_obj"][b, rows, cols] = xyz
        out["normals_cam"][b, rows, cols] = normals_cam
        out["rgb"][b, rows, cols] = rgb.clip(0.0, 1.0)

    def _cast(self, ms: _ModelScene, rays: np.ndarray):
        """Cast rays (N, 6); returns (pixel index, depth, triangle vertex ids, barycentrics)."""
        ans = ms.scene.cast_rays(ms.tensor(rays), nthreads=self.nthreads)
        t_hit = ans["t_hit"].numpy()
        idx = np.flatnonzero(np.isfinite(t_hit))
        if idx.size == 0:
            return None
        prim = ans["primitive_ids"].numpy()[idx].astype(np.int64)
        uv = ans["primitive_uvs"].numpy()[idx].astype(np.float64)
        # open3d: hit = (1 - u - v) * v0 + u * v1 + v * v2
        bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
        return idx, t_hit[idx].astype(np.float64), ms.faces[prim], bary


def _interp(attr: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex attributes (V, C) at hits -> (N, C)."""
    return np.einsum("nk,nkc->nc", bary, attr[tri])


def _light_dirs(shading: Shading, dirs_cam: np.ndarray) -> np.ndarray:
    """(N, 3) unit directions towards the light, in the camera frame."""
    if shading.light_dir_cam is None:
        return -dirs_cam / np.linalg.norm(dirs_cam, axis=1, keepdims=True)
    light = np.asarray(shading.light_dir_cam, dtype=np.float64)
    return np.broadcast_to(light / np.linalg.norm(light), dirs_cam.shape)


@lru_cache(maxsize=8)
def _pixel_rays(size: int) -> np.ndarray:
    """Homogeneous pixel centres (size*size, 3), row-major: index = row * size + col."""
    v, u = np.meshgrid(
        np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij"
    )
    rays = np.stack([u.ravel(), v.ravel(), np.ones(size * size)], axis=1)
    rays.flags.writeable = False  # shared by every call through the cache
    return rays


def _empty_output(batch: int, size: int) -> dict[str, np.ndarray]:
    shape = (batch, size, size)
    return {
        "mask": np.zeros(shape, dtype=bool),
        "depth": np.zeros(shape, dtype=np.float32),
        "xyz_obj": np.zeros((*shape, 3), dtype=np.float32),
        "normals_cam": np.zeros((*shape, 3), dtype=np.float32),
        "rgb": np.zeros((*shape, 3), dtype=np.float32),
    }


def _as_batch(x, tail: tuple[int, int], name: str) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)
    if arr.ndim != 3 or arr.shape[1:] != tail:
        raise ValueError(f"{name} must have shape (B, {tail[0]}, {tail[1]}), got {arr.shape}")
    return arr

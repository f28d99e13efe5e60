"""Full-image depth of several objects at once, by ray casting (open3d ``RaycastingScene``).

The models are placed at their poses in one scene in the camera frame (OpenCV optical frame,
metres), and one ray per pixel centre is cast from the camera centre: the nearest hit gives the
pixel's depth and which instance it sees. Pixel (i, j) is row i, column j; its centre is at image
coordinates (u, v) = (j, i), as in ``RenderOutput``. Depth is the camera-frame z of the surface
(not the ray length): each ray's direction is K⁻¹ (u, v, 1), whose z is 1, so the hit distance
along it is z itself.

This is the ground truth a depth camera would see of the known objects; ``gcf_ros.eval.simdepth``
turns it into a noisy sensor image. open3d is imported by :func:`render_scene_depth` when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gcf_ros.core._open3d import require_open3d

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel

__all__ = ["SceneDepth", "pixel_rays", "render_scene_depth"]


@dataclass(frozen=True)
class SceneDepth:
    """What the camera sees of N objects in an H x W image (arrays read-only).

    Attributes:
        depth: (H, W) float32, metres: camera-frame z of the nearest object surface; 0 where the
            ray hits no object.
        instance: (H, W) int32: index (into the models / poses given) of the instance seen at each
            pixel; -1 where none.
    """

    depth: np.ndarray
    instance: np.ndarray

    def __post_init__(self) -> None:
        depth = np.array(self.depth, dtype=np.float32)
        instance = np.array(self.instance, dtype=np.int32)
        if depth.ndim != 2 or instance.shape != depth.shape:
            raise ValueError(
                f"SceneDepth: depth {depth.shape} and instance {instance.shape} must be the same "
                "(H, W)"
            )
        for name, array in (("depth", depth), ("instance", instance)):
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, where some object is seen."""
        return self.instance >= 0


def render_scene_depth(
    models: Sequence[ObjectModel],
    T_cam_obj: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    nthreads: int = 0,
) -> SceneDepth:
    """Depth and instance index of the nearest surface at every pixel of an image.

    Args:
        models: the N object models (vertices in metres, object frame).
        T_cam_obj: (N, 4, 4) object → camera transforms, metres.
        K: (3, 3) pinhole intrinsics of the image, pixels.
        size: (H, W) image size, pixels.
        nthreads: ray-casting threads (0: all cores).

    Returns:
        ``SceneDepth`` of shape (H, W). With no models, every pixel is empty.
    """
    T = np.asarray(T_cam_obj, dtype=np.float64)
    if T.shape != (len(models), 4, 4):
        raise ValueError(f"T_cam_obj must have shape ({len(models)}, 4, 4), got {T.shape}")
    K = _check_K(K)
    H, W = (int(s) for s in size)
    if H < 1 or W < 1:
        raise ValueError(f"size must be (H, W) with both >= 1, got {size}")
    depth = np.zeros((H, W), dtype=np.float32)
    instance = np.full((H, W), -1, dtype=np.int32)
    if len(models) == 0:
        return SceneDepth(depth, instance)
    o3d = require_open3d("full-image depth by ray casting (render_scene_depth, simulated depth)")
    scene = o3d.t.geometry.RaycastingScene()
    geometry_to_instance = {}
    for n, model in enumerate(models):
        verts_cam = model.verts_obj.astype(np.float64) @ T[n, :3, :3].T + T[n, :3, 3]
        gid = scene.add_triangles(
            o3d.core.Tensor(verts_cam.astype(np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(model.faces, dtype=np.uint32)),
        )
        geometry_to_instance[int(gid)] = n
    rays = np.zeros((H * W, 6), dtype=np.float32)  # origins: the camera centre
    rays[:, 3:] = pixel_rays(K, (H, W)).reshape(-1, 3)
    ans = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    t_hit = ans["t_hit"].numpy().reshape(H, W)
    hit = np.isfinite(t_hit)
    depth[hit] = t_hit[hit]
    lookup = np.full(max(geometry_to_instance) + 1, -1, dtype=np.int32)
    lookup[list(geometry_to_instance)] = list(geometry_to_instance.values())
    gids = ans["geometry_ids"].numpy().reshape(H, W)
    instance[hit] = lookup[gids[hit]]
    return SceneDepth(depth, instance)


def pixel_rays(K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float64 camera-frame ray directions K⁻¹ (j, i, 1) of the pixel centres; z = 1."""
    H, W = (int(s) for s in size)
    v, u = np.meshgrid(
        np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij"
    )
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    return pix @ np.linalg.inv(_check_K(K)).T


def _check_K(K: np.ndarray) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {K.shape}")
    return K

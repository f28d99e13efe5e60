"""Simulated depth images: what a Kinect-like RGB-D camera would measure of known objects.

Input is the exact scene depth of the annotated objects (``render_scene_depth``) plus a background
surface, the supporting table plane estimated from the ground-truth poses (``support_plane``).
``simulate_depth`` then degrades it the way structured-light sensors do:

1. pixels outside the sensor's range are missing;
2. pixels at depth discontinuities (a jump to a neighbour above a threshold, or a missing
   neighbour) are dropped, dilated by a pixel: the sensor's shadows and mixed pixels at edges;
3. random blobs of missing pixels (a few % of the image): specular and dark surfaces;
4. axial noise with a standard deviation growing with z²: σ_z = 1.2 mm + 1.9 mm/m² · (z − 0.4 m)²,
   the fit of Nguyen, Izadi and Lovell, "Modeling Kinect Sensor Noise for Improved 3D
   Reconstruction and Tracking", 3DIMPVT 2012 (for surfaces facing the camera within 60°);
5. quantisation to 1 mm (the resolution of a BOP depth PNG);
6. optionally, a further fraction of the remaining pixels dropped at random (a robustness knob).

Conventions: camera frame = OpenCV optical frame, metres; depth images are (H, W) float32 camera z
in metres, 0 = missing. Every random draw comes from the ``rng`` passed in, in a fixed order, so a
seed gives the same image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from gcf_ros.core.render.scene import SceneDepth, pixel_rays, render_scene_depth

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel

__all__ = [
    "DepthNoise",
    "Plane",
    "axial_sigma_m",
    "drop_pixels",
    "simulate_depth",
    "simulate_frame_depth",
    "support_plane",
]

_MIN_VIEW_SIN = math.sin(math.radians(10.0))  # a plane seen closer to edge-on is not trusted


@dataclass(frozen=True)
class DepthNoise:
    """Parameters of the sensor model (defaults: a Kinect v1 in its default range mode).

    Attributes:
        sigma_base_m: constant part of the axial noise σ_z, metres.
        sigma_quadratic_per_m: z² coefficient of σ_z, metres per square metre (so m⁻¹):
            σ_z = sigma_base_m + sigma_quadratic_per_m · (z − sigma_z0_m)².
        sigma_z0_m: the depth where σ_z is smallest, metres.
        quantum_m: depth resolution, metres; 0 keeps the values unrounded.
        min_depth_m: nearest measurable depth, metres (nearer: missing).
        max_depth_m: farthest measurable depth, metres (farther: missing).
        edge_jump_m: a pixel whose depth differs from a 4-neighbour's by more than this (or whose
            neighbour is missing) is dropped, metres; ``inf`` keeps edges.
        edge_dilate_px: the dropped edge pixels are dilated by this many pixels (square).
        hole_fraction: fraction of the image covered by random blobs of missing pixels, [0, 1).
        hole_size_px: the blobs' scale: the standard deviation of the Gaussian that smooths the
            white noise whose top ``hole_fraction`` becomes holes, pixels.
        drop_fraction: fraction of the pixels still valid after all the above that is removed at
            random, [0, 1).
    """

    sigma_base_m: float = 0.0012
    sigma_quadratic_per_m: float = 0.0019
    sigma_z0_m: float = 0.4
    quantum_m: float = 0.001
    min_depth_m: float = 0.4
    max_depth_m: float = 4.0
    edge_jump_m: float = 0.02
    edge_dilate_px: int = 1
    hole_fraction: float = 0.02
    hole_size_px: float = 2.0
    drop_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma_base_m", "sigma_quadratic_per_m", "sigma_z0_m", "quantum_m",
                     "min_depth_m", "hole_size_px"):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"DepthNoise.{name} must be finite and >= 0, got {value!r}")
        if not self.max_depth_m > self.min_depth_m:
            raise ValueError(
                f"DepthNoise: max_depth_m must exceed min_depth_m ({self.min_depth_m})"
            )
        if not self.edge_jump_m > 0.0:
            raise ValueError(f"DepthNoise.edge_jump_m must be > 0, got {self.edge_jump_m!r}")
        if isinstance(self.edge_dilate_px, bool) or not isinstance(self.edge_dilate_px, int):
            raise ValueError("DepthNoise.edge_dilate_px must be an integer")
        if self.edge_dilate_px < 0:
            raise ValueError("DepthNoise.edge_dilate_px must be >= 0")
        for name in ("hole_fraction", "drop_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"DepthNoise.{name} must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def ideal(cls, drop_fraction: float = 0.0) -> DepthNoise:
        """No noise, no rounding, no edge or blob holes, unlimited range: the exact depth."""
        return cls(
            sigma_base_m=0.0, sigma_quadratic_per_m=0.0, quantum_m=0.0, min_depth_m=0.0,
            max_depth_m=math.inf, edge_jump_m=math.inf, edge_dilate_px=0, hole_fraction=0.0,
            drop_fraction=drop_fraction,
        )  # fmt: skip


@dataclass(frozen=True)
class Plane:
    """A plane in the camera frame: the points X with normal_cam · X = -camera_height_m.

    Attributes:
        normal_cam: (3,) float64 unit normal, pointing to the camera's side ("up" for a table).
        camera_height_m: the camera centre's distance from the plane, metres (> 0).
    """

    normal_cam: np.ndarray
    camera_height_m: float

    def __post_init__(self) -> None:
        n = np.array(self.normal_cam, dtype=np.float64).reshape(3)
        if not abs(np.linalg.norm(n) - 1.0) < 1e-6:
            raise ValueError(f"Plane.normal_cam must be a unit vector, got {n}")
        if not self.camera_height_m > 0.0:
            raise ValueError(f"Plane.camera_height_m must be > 0, got {self.camera_height_m}")
        n.flags.writeable = False
        object.__setattr__(self, "normal_cam", n)
        object.__setattr__(self, "camera_height_m", float(self.camera_height_m))

    def height_m(self, X_cam: np.ndarray) -> np.ndarray:
        """(...,) signed height of points (..., 3) above the plane, metres."""
        return np.asarray(X_cam) @ self.normal_cam + self.camera_height_m

    def depth(self, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(H, W) float32 z of the plane at each pixel centre, metres; 0 where the pixel's ray
        does not meet it in front of the camera."""
        denom = pixel_rays(K, size) @ self.normal_cam  # < 0: the ray goes down to the plane
        with np.errstate(divide="ignore"):
            z = np.where(denom < -1e-9, -self.camera_height_m / np.minimum(denom, -1e-9), 0.0)
        return z.astype(np.float32)


def support_plane(
    models: Sequence[ObjectModel],
    T_cam_obj: np.ndarray,
    fallback_margin_m: float = 0.1,
    iterations: int = 3,
) -> Plane:
    """The table the objects stand on, guessed from their poses.

    A least-squares plane through the objects' box centres, then refitted ``iterations`` times
    through each object's lowest vertex along the current normal (the points that touch a real
    table), and finally moved along its normal away from the camera until every vertex of every
    object lies on or above it. With fewer than 3 objects, collinear centres, a plane seen
    within 10° of edge-on or one through the camera, the fallback is a fronto-parallel plane
    ``fallback_margin_m`` behind the farthest vertex.

    Args:
        models: the N object models.
        T_cam_obj: (N, 4, 4) object → camera transforms, metres.
        fallback_margin_m: the fallback plane's distance behind the farthest vertex, metres.
        iterations: refits through the lowest vertices (0: the plane through the centres).
    """
    T = np.asarray(T_cam_obj, dtype=np.float64).reshape(len(models), 4, 4)
    if len(models) == 0 or not np.isfinite(T).all():
        raise ValueError("support_plane needs at least one object and finite poses")
    verts = [
        m.verts_obj.astype(np.float64) @ t[:3, :3].T + t[:3, 3]
        for m, t in zip(models, T, strict=True)
    ]
    centres = np.stack([0.5 * (m.bbox_min + m.bbox_max) @ t[:3, :3].T + t[:3, 3]
                        for m, t in zip(models, T, strict=True)])  # fmt: skip
    normal = _fit_normal(centres)
    for _ in range(iterations if normal is not None else 0):
        lowest = np.stack([v[np.argmin(v @ normal)] for v in verts])
        refit = _fit_normal(lowest)
        normal = normal if refit is None else refit
    all_verts = np.concatenate(verts)
    if normal is not None:
        height = -float((all_verts @ normal).min())  # every vertex on or above the plane
        if height > 1e-3:
            return Plane(normal, height)
    return Plane(np.array([0.0, 0.0, -1.0]), float(all_verts[:, 2].max()) + fallback_margin_m)


def _fit_normal(points: np.ndarray) -> np.ndarray | None:
    """Unit normal (3,) of the least-squares plane through points (N, 3), on the camera's side;
    None when fewer than 3 points, (nearly) collinear, or seen within 10° of edge-on."""
    if len(points) < 3:
        return None
    centroid = points.mean(0)
    _, s, Vt = np.linalg.svd(points - centroid)
    if s[1] < max(0.1 * s[0], 1e-3):
        return None
    normal = Vt[2] if centroid @ Vt[2] < 0 else -Vt[2]
    if abs(normal @ centroid) < _MIN_VIEW_SIN * np.linalg.norm(centroid):
        return None
    return normal


def axial_sigma_m(z_m: np.ndarray, noise: DepthNoise) -> np.ndarray:
    """Standard deviation (metres) of the depth noise at depths ``z_m`` (metres), any shape."""
    z = np.asarray(z_m, dtype=np.float64)
    return noise.sigma_base_m + noise.sigma_quadratic_per_m * (z - noise.sigma_z0_m) ** 2


def simulate_depth(
    scene: SceneDepth,
    K: np.ndarray,
    rng: np.random.Generator,
    noise: DepthNoise | None = None,
    background: Plane | None = None,
) -> np.ndarray:
    """A sensor depth image of ``scene`` (the module docstring lists the steps).

    Args:
        scene: the objects' exact depth (H, W), metres.
        K: (3, 3) intrinsics of the image, pixels (for the background plane).
        rng: the source of every random draw.
        noise: the sensor model (default ``DepthNoise()``).
        background: the surface behind the objects (None: nothing, pixels without an object are
            missing).

    Returns:
        (H, W) float32 depth, metres, 0 = missing.
    """
    noise = noise or DepthNoise()
    clean = scene.depth.astype(np.float64)
    if background is not None:
        clean = np.where(scene.mask, clean, background.depth(K, clean.shape))
    clean[(clean < noise.min_depth_m) | (clean > noise.max_depth_m)] = 0.0
    keep = (clean > 0.0) & ~_edges(clean, noise) & ~_holes(clean.shape, noise, rng)
    z = clean + rng.standard_normal(clean.shape) * axial_sigma_m(clean, noise)
    if noise.quantum_m > 0.0:
        z = np.round(z / noise.quantum_m) * noise.quantum_m
    depth = np.where(keep & (z > 0.0), z, 0.0).astype(np.float32)
    return drop_pixels(depth, noise.drop_fraction, rng)


def drop_pixels(depth_m: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``depth_m`` (H, W) with round(fraction × valid) of its valid pixels (> 0,
    finite) set to 0, chosen uniformly at random; NaNs (missing) become 0 as well."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"drop fraction must be in [0, 1), got {fraction}")
    depth = np.nan_to_num(np.array(depth_m, dtype=np.float32), nan=0.0, posinf=0.0)
    if fraction == 0.0:
        return depth
    valid = np.flatnonzero(depth > 0.0)
    drop = rng.choice(valid, size=round(fraction * len(valid)), replace=False)
    depth.reshape(-1)[drop] = 0.0
    return depth


def simulate_frame_depth(
    models: Sequence[ObjectModel],
    T_cam_obj: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    noise: DepthNoise | None = None,
) -> np.ndarray:
    """``simulate_depth`` of the models at their poses (N, 4, 4) over their ``support_plane``, in
    an image of ``size`` (H, W): (H, W) float32 metres, 0 = missing."""
    scene = render_scene_depth(models, T_cam_obj, K, size)
    plane = support_plane(models, T_cam_obj) if len(models) else None
    return simulate_depth(scene, K, rng, noise, plane)


def _edges(clean: np.ndarray, noise: DepthNoise) -> np.ndarray:
    """(H, W) bool: pixels next to a jump above ``edge_jump_m`` or a missing pixel, dilated."""
    if not math.isfinite(noise.edge_jump_m):
        return np.zeros(clean.shape, dtype=bool)
    valid = clean > 0.0
    edge = np.zeros(clean.shape, dtype=bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        jump = np.abs(clean[tuple(a)] - clean[tuple(b)]) > noise.edge_jump_m
        jump |= valid[tuple(a)] != valid[tuple(b)]
        edge[tuple(a)] |= jump
        edge[tuple(b)] |= jump
    if noise.edge_dilate_px > 0:
        kernel = np.ones((2 * noise.edge_dilate_px + 1,) * 2, dtype=np.uint8)
        edge = cv2.dilate(edge.astype(np.uint8), kernel) > 0
    return edge


def _holes(shape: tuple[int, int], noise: DepthNoise, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool blobs covering ``hole_fraction`` of the image: smoothed white noise above its
    (1 - hole_fraction) quantile."""
    if noise.hole_fraction == 0.0:
        return np.zeros(shape, dtype=bool)
    field = rng.standard_normal(shape).astype(np.float32)
    if noise.hole_size_px > 0.0:
        field = cv2.GaussianBlur(field, (0, 0), noise.hole_size_px, borderType=cv2.BORDER_REFLECT)
    return field > np.quantile(field, 1.0 - noise.hole_fraction)

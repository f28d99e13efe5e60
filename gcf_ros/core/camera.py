"""Pinhole cameras, projection Jacobians and square crop windows.

Conventions: OpenCV / REP 103 optical frame (x right, y down, z forward), metres; pixel centres at
integer coordinates, so pixel (u, v) = (0, 0) covers [-0.5, 0.5]^2. ``K`` is the (3, 3) matrix
[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. Lens distortion is not modelled: images are expected to be
rectified (``sensor_msgs/CameraInfo`` with all-zero D, or the ``image_rect`` topic).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0):
            raise ValueError(f"invalid intrinsics {self}: fx, fy, width, height must be positive")

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> Intrinsics:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        if abs(K[0, 1]) > 1e-9 or np.abs(K[2] - (0, 0, 1)).max() > 1e-9:
            raise ValueError(f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)

    @classmethod
    def from_camera_info(cls, info: Mapping[str, Any]) -> Intrinsics:
        """From a ``sensor_msgs/CameraInfo``-like mapping: ``k`` (9, row-major), ``width``,
        ``height``, optional ``d`` and ``distortion_model``.

        Distortion is ignored (the image is treated as rectified); a warning is logged unless the
        model is ``plumb_bob``/``rational_polynomial``/``equidistant`` with all-zero coefficients.
        """
        k = np.asarray(info.get("k", info.get("K")), dtype=np.float64)
        if k.size != 9 or not np.isfinite(k).all():
            raise ValueError(f"camera info needs a finite 9-element k, got {info.get('k')}")
        d = np.asarray(info.get("d", info.get("D", ())) or (), dtype=np.float64)
        model = str(info.get("distortion_model", "") or "")
        if d.size and np.abs(d).max() > 0:
            _LOG.warning(
                "camera info has %s distortion %s: ignored, images are treated as rectified "
                "(subscribe to image_rect for exact poses)",
                model or "unnamed",
                np.round(d, 5).tolist(),
            )
        elif model not in ("", "plumb_bob", "rational_polynomial", "equidistant"):
            _LOG.warning("unknown distortion model %r ignored", model)
        return cls.from_K(k.reshape(3, 3), int(info["width"]), int(info["height"]))

    def scaled(self, factor: float) -> Intrinsics:
        """The same camera for an image resized by ``factor`` (pixel centres preserved)."""
        return Intrinsics(
            self.fx * factor,
            self.fy * factor,
            (self.cx + 0.5) * factor - 0.5,
            (self.cy + 0.5) * factor - 0.5,
            round(self.width * factor),
            round(self.height * factor),
        )


def project(K: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
    """Camera-frame points (..., N, 3) -> pixels (..., N, 2) with K (..., 3, 3)."""
    x = X_cam @ K.transpose(-1, -2)
    return x[..., :2] / x[..., 2:3]


def backproject(K: torch.Tensor, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Pixels (..., N, 2) at depths z (..., N) -> camera-frame points (..., N, 3)."""
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    return torch.stack([x, y, depth], dim=-1)


def projection_jacobian(K: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
    """d(u, v)/dX_cam (..., N, 2, 3) = [[fx/Z, 0, -fx X/Z^2], [0, fy/Z, -fy Y/Z^2]]."""
    X, Y, Z = X_cam.unbind(-1)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    inv_z = 1 / Z
    zero = torch.zeros_like(X)
    row_u = torch.stack([fx * inv_z, zero, -fx * X * inv_z * inv_z], dim=-1)
    row_v = torch.stack([zero, fy * inv_z, -fy * Y * inv_z * inv_z], dim=-1)
    return torch.stack([row_u, row_v], dim=-2)


def pose_jacobian(K: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
    """d(u, v)/dxi (..., N, 2, 6) for the left perturbation T <- exp(xi^) T, xi = (v, omega).

    dX_cam/dxi = [I | -[X_cam]x], chained with ``projection_jacobian``.
    """
    J_proj = projection_jacobian(K, X_cam)
    X, Y, Z = X_cam.unbind(-1)
    o = torch.zeros_like(X)
    i = torch.ones_like(X)
    # [I | -[X]x], rows: d(X, Y, Z)/d(v, omega)
    dX_dxi = torch.stack(
        [
            torch.stack([i, o, o, o, Z, -Y], -1),
            torch.stack([o, i, o, -Z, o, X], -1),
            torch.stack([o, o, i, Y, -X, o], -1),
        ],
        dim=-2,
    )
    return J_proj @ dX_dxi


@dataclass(frozen=True)
class CropWindow:
    """A square window of the full image, resampled to ``size`` x ``size`` pixels.

    ``x0, y0`` is the top-left *corner* of the window in full-image pixels (the corner of pixel
    (0, 0) is at (-0.5, -0.5)), ``side`` its side length in full-image pixels. A full-image pixel
    coordinate u maps to window coordinate ``(u + 0.5 - x0) * scale - 0.5``.
    """

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Window pixels per full-image pixel."""
        return self.size / self.side

    def affine(self) -> np.ndarray:
        """(2, 3) float64 map from full-image pixel coordinates to window pixel coordinates."""
        s = self.scale
        return np.array(
            [[s, 0, (0.5 - self.x0) * s - 0.5], [0, s, (0.5 - self.y0) * s - 0.5]], dtype=np.float64
        )

    def K_window(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) camera matrix of the window: the crop and the scale folded into K."""
        A = np.vstack([self.affine(), (0, 0, 1)])
        return A @ np.asarray(K, dtype=np.float64)

    def to_window(self, uv: np.ndarray) -> np.ndarray:
        """Full-image pixels (..., 2) -> window pixels (..., 2)."""
        return (np.asarray(uv, dtype=np.float64) + 0.5 - (self.x0, self.y0)) * self.scale - 0.5

    def to_image(self, uv_window: np.ndarray) -> np.ndarray:
        """Window pixels (..., 2) -> full-image pixels (..., 2)."""
        return (
            (np.asarray(uv_window, dtype=np.float64) + 0.5) / self.scale - 0.5 + (self.x0, self.y0)
        )

    def resample(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Crop and resize an (H, W[, C]) image to (size, size[, C]); outside pixels are 0.

        Downscaling by more than 2x is area-averaged first to avoid aliasing.
        """
        if self.scale < 0.5 and interpolation == cv2.INTER_LINEAR:
            interpolation = cv2.INTER_AREA
        return cv2.warpAffine(
            image,
            self.affine(),
            (self.size, self.size),
            flags=interpolation,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


def crop_window_around(
    uv: np.ndarray, size: int, padding: float = 1.3, min_side: float = 16.0
) -> CropWindow:
    """The square window centred on the bounding box of pixels uv (N, 2), side = padding * the
    box's longer side (at least ``min_side`` full-image pixels)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(uv).all() or len(uv) == 0:
        raise ValueError("crop_window_around needs finite pixel coordinates")
    lo, hi = uv.min(0), uv.max(0)
    centre = (lo + hi) / 2
    side = max(float((hi - lo).max()) * padding, min_side)
    return CropWindow(
        x0=float(centre[0] + 0.5 - side / 2),
        y0=float(centre[1] + 0.5 - side / 2),
        side=side,
        size=size,
    )


def crop_window_for_box(
    K: np.ndarray,
    T_cam_obj: np.ndarray,
    corners_obj: np.ndarray,
    size: int,
    padding: float = 1.3,
) -> CropWindow:
    """Window around the projection of an object's 3D box corners (8, 3) at pose T_cam_obj (4, 4).

    Raises ValueError when a corner is not in front of the camera.
    """
    T = np.asarray(T_cam_obj, dtype=np.float64)
    X_cam = np.asarray(corners_obj, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]
    if (X_cam[:, 2] <= 1e-6).any():
        raise ValueError("object box is (partly) behind the camera")
    uv = X_cam @ np.asarray(K, dtype=np.float64).T
    return crop_window_around(uv[:, :2] / uv[:, 2:], size, padding)


def stack_K(Ks: Sequence[np.ndarray], dtype=torch.float32, device="cpu") -> torch.Tensor:
    """List of (3, 3) arrays -> (B, 3, 3) tensor."""
    return torch.as_tensor(np.stack(Ks), dtype=dtype, device=device)

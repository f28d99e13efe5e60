"""Pinhole cameras, projection Jacobians and square crop windows.

Conventions: OpenCV / REP 103 optical frame (x right, y down, z forward), metres; pixel centres at
integer coordinates, so pixel (u, v) = (0, 0) covers [-0.5, 0.5]^2. ``K`` is the (3, 3) matrix
[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. Lens distortion is not modelled: images are expected to be
rectified (``sensor_msgs/CameraInfo`` with all-zero D, or the ``image_rect`` topic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch


def checked_camera_matrix(k: Sequence[float] | np.ndarray, width: int, height: int) -> np.ndarray:
    """The (3, 3) float64 K of a ``sensor_msgs/CameraInfo``-like ``k`` (9 values, row-major) for
    an image of ``width`` x ``height`` pixels. The one camera-info check.

    Raises ValueError naming the broken rule: not 9 values, NaN or infinite values, a focal length
    <= 0, a K not of the form above, a size missing (width or height 0: a K cannot be checked
    against, nor trusted for, an image of unknown size), or a principal point more than half the
    image size outside the image.
    """
    k = np.asarray(k, dtype=np.float64).ravel()
    if k.size != 9:
        raise ValueError(f"K needs 9 values, got {k.size}")
    if not np.isfinite(k).all():
        raise ValueError("K contains NaN or infinite values")
    K = k.reshape(3, 3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise ValueError(f"K has a zero or negative focal length (fx, fy) = ({fx}, {fy})")
    if np.abs(K - [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]).max() > 1e-9:
        raise ValueError(f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width} x {height} missing: width and height must be > 0")
    if not (-width / 2 <= cx <= 1.5 * width and -height / 2 <= cy <= 1.5 * height):
        raise ValueError(f"principal point ({cx}, {cy}) far outside the {width} x {height} image")
    return K


def project(K: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
    """Camera-frame points (..., N, 3) -> pixels (..., N, 2) with K (..., 3, 3)."""
    x = X_cam @ K.transpose(-1, -2)
    return x[..., :2] / x[..., 2:3]


def projection_jacobian(K: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
    """d(u, v)/dX_cam (..., N, 2, 3) = [[fx/Z, 0, -fx X/Z^2], [0, fy/Z, -fy Y/Z^2]]."""
    X, Y, Z = X_cam.unbind(-1)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    inv_z = 1 / Z
    zero = torch.zeros_like(X)
    row_u = torch.stack([fx * inv_z, zero, -fx * X * inv_z * inv_z], dim=-1)
    row_v = torch.stack([zero, fy * inv_z, -fy * Y * inv_z * inv_z], dim=-1)
    return torch.stack([row_u, row_v], dim=-2)


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

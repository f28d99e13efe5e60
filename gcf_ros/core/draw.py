"""Drawing poses on images: the model's silhouette outline and its coordinate axes.

Used by ``gcf-render``, the node's ``debug/overlay`` topic and the evaluation's figures. Images
are (H, W, 3) uint8 RGB; poses are ``T_cam_obj`` (4, 4) in the camera optical frame, metres.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from gcf_ros.core.camera import CropWindow, crop_window_around
from gcf_ros.core.render.raycast import RaycastRenderer

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel
    from gcf_ros.core.render.types import Renderer

AXIS_COLORS_RGB = ((230, 40, 40), (40, 200, 40), (50, 90, 255))  # x red, y green, z blue
_MAX_OUTLINE_WINDOW = 1024  # px; larger footprints are rendered at reduced resolution


def outline_contours(
    model: ObjectModel,
    K: np.ndarray,
    T_cam_obj: np.ndarray,
    image_size: tuple[int, int],
    renderer: Renderer | None = None,
) -> list[np.ndarray]:
    """Silhouette contours of a model at a pose: float (N, 2) polylines in full-image pixels.

    ``image_size`` is (width, height). Renders a window around the projected bounding box at about
    native resolution. Returns [] when the object is behind the camera or outside the image.
    """
    T = np.asarray(T_cam_obj, dtype=np.float64)
    corners_cam = model.bbox_corners_obj.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    if (corners_cam[:, 2] <= 1e-3).any():
        return []
    uv = corners_cam @ np.asarray(K, dtype=np.float64).T
    uv = uv[:, :2] / uv[:, 2:]
    w, h = image_size
    if uv[:, 0].max() < 0 or uv[:, 1].max() < 0 or uv[:, 0].min() >= w or uv[:, 1].min() >= h:
        return []
    side = crop_window_around(uv, size=1, padding=1.1).side
    size = int(min(max(np.ceil(side), 16), _MAX_OUTLINE_WINDOW))
    window = crop_window_around(uv, size=size, padding=1.1)
    renderer = renderer or RaycastRenderer()
    out = renderer.render(
        [model],
        torch.from_numpy(T)[None],
        torch.from_numpy(window.K_window(K))[None],
        size,
    )
    mask = out.mask[0].cpu().numpy().astype(np.uint8)  # any renderer's device
    return _mask_contours(mask, window)


def _mask_contours(mask: np.ndarray, window: CropWindow) -> list[np.ndarray]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [window.to_image(c[:, 0, :].astype(np.float64)) for c in contours if len(c) >= 3]


def draw_outline(
    image_rgb: np.ndarray,
    contours: list[np.ndarray],
    color_rgb: tuple[int, int, int] = (255, 220, 0),
    thickness: int = 2,
) -> np.ndarray:
    """Draw closed polylines (float pixel coordinates) on a copy of the image, anti-aliased."""
    out = np.ascontiguousarray(image_rgb).copy()
    shift = 4  # sub-pixel precision of cv2 drawing
    pts = [np.round(c * (1 << shift)).astype(np.int32) for c in contours]
    cv2.polylines(out, pts, True, color_rgb, thickness, cv2.LINE_AA, shift)
    return out


def draw_axes(
    image_rgb: np.ndarray,
    K: np.ndarray,
    T_cam_obj: np.ndarray,
    length_m: float,
    thickness: int = 2,
) -> np.ndarray:
    """Draw the object frame's x (red), y (green), z (blue) axes of ``length_m`` metres."""
    out = np.ascontiguousarray(image_rgb).copy()
    T = np.asarray(T_cam_obj, dtype=np.float64)
    pts_obj = np.vstack([np.zeros(3), np.eye(3) * length_m])
    pts_cam = pts_obj @ T[:3, :3].T + T[:3, 3]
    if (pts_cam[:, 2] <= 1e-3).any():
        return out
    uv = pts_cam @ np.asarray(K, dtype=np.float64).T
    uv = uv[:, :2] / uv[:, 2:]
    shift = 4
    p = np.round(uv * (1 << shift)).astype(np.int64)
    order = np.argsort(-pts_cam[1:, 2])  # far axes first, so near ones are drawn on top
    for i in order:
        cv2.line(
            out, tuple(p[0]), tuple(p[i + 1]), AXIS_COLORS_RGB[i], thickness, cv2.LINE_AA, shift
        )
    return out


def draw_pose(
    image_rgb: np.ndarray,
    model: ObjectModel,
    K: np.ndarray,
    T_cam_obj: np.ndarray,
    color_rgb: tuple[int, int, int] = (255, 220, 0),
    renderer: RaycastRenderer | None = None,
) -> np.ndarray:
    """Outline plus axes (half the model's diameter long) of one model at one pose."""
    h, w = image_rgb.shape[:2]
    contours = outline_contours(model, K, T_cam_obj, (w, h), renderer)
    out = draw_outline(image_rgb, contours, color_rgb)
    return draw_axes(out, K, T_cam_obj, 0.5 * model.diameter)

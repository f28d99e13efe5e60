"""Visible masks and visible fractions of several objects in one image, by rendering them all.

Used where a dataset has no visibility annotation (BOP without ``scene_gt_info.json``) and for the
*oracle* target masks of the mask-space baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.render.raycast import RaycastRenderer

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel


@dataclass(frozen=True)
class SceneMasks:
    """Full-image masks of B objects rendered together.

    Attributes:
        full: (B, H, W) bool, where each object's surface projects (ignoring the others).
        visible: (B, H, W) bool, where each object is the nearest surface.
        visib_fract: (B,) float, visible / full pixel counts (0 when an object is off-image).
        depth: (H, W) float32 camera depth of the nearest surface, metres, 0 where none (a
            noise-free depth image of the scene).
    """

    full: np.ndarray
    visible: np.ndarray
    visib_fract: np.ndarray
    depth: np.ndarray


def render_scene_masks(
    models: Sequence[ObjectModel],
    T_cam_obj: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    renderer: RaycastRenderer | None = None,
) -> SceneMasks:
    """Render B models at their poses T_cam_obj (B, 4, 4) into a W x H image with camera K."""
    side = max(width, height)
    window = CropWindow(x0=0.0, y0=0.0, side=float(side), size=side)  # the image itself
    renderer = renderer or RaycastRenderer()
    B = len(models)
    Ks = torch.from_numpy(np.repeat(window.K_window(K)[None], B, 0))
    out = renderer.render(models, torch.as_tensor(np.asarray(T_cam_obj)), Ks, side)
    full = out.mask[:, :height, :width].numpy()
    depth = out.depth[:, :height, :width].numpy().astype(np.float64)
    depth = np.where(full, depth, np.inf)
    nearest = depth.min(axis=0, keepdims=True)
    visible = full & (depth <= nearest + 1e-6)
    counts = full.reshape(B, -1).sum(1)
    fract = np.where(counts > 0, visible.reshape(B, -1).sum(1) / np.maximum(counts, 1), 0.0)
    scene_depth = np.where(np.isfinite(nearest[0]), nearest[0], 0.0).astype(np.float32)
    return SceneMasks(full=full, visible=visible, visib_fract=fract, depth=scene_depth)

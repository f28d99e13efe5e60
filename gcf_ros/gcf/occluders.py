"""Where the other instances of a refine call hide each window's object: their nearest rendered
depth in that window (issue 15, item 2: lines that cross another instance's rendering).

A silhouette line (``gcf_ros.gcf.terms.silhouette``) reads the image along the rendered contour's
normal and takes the first colour change for the object's contour. Where another object of the
call lies in front, the change is that object's outline, not this one's: an occluded contour point
looks like a silhouette that ends early, and the line pulls the pose inwards (the object shrinks,
i.e. it moves away from the camera). With the other instances rendered into the window at their
current poses, the line terms treat samples covered by a nearer instance as unobserved, and the
field term drops the rendered pixels such an instance hides.

The renders are pairs (window of instance b, model and pose of instance j) for every j whose
projected bounding box meets b's window and whose nearest box corner is nearer than b's farthest
one (else j lies wholly behind b), except a second detection of b's model less than half its
diameter from it (two hypotheses of one object), one renderer call for all of them, at half the
window's resolution (``REDUCTION``; each depth covers 2 x 2 window pixels: occlusion needs no
sub-pixel edge, and the renders cost a quarter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

REDUCTION = 2  # the occluders are rendered at 1 / REDUCTION of the window's resolution

if TYPE_CHECKING:
    from gcf_ros.core.camera import CropWindow
    from gcf_ros.core.models import ObjectModel
    from gcf_ros.core.render.types import Renderer


def occluder_depth(
    renderer: Renderer,
    models: Sequence[ObjectModel],
    T_cam_obj: np.ndarray,
    present: np.ndarray,
    idx: np.ndarray,
    windows: Sequence[CropWindow],
    K: np.ndarray,
    K_window: torch.Tensor,
    size: int,
) -> torch.Tensor | None:
    """(len(idx), S, S) float32 camera depth (metres) of the nearest *other* instance in each
    window, +inf where none is rendered; None when no other instance meets any window.

    Args:
        models, T_cam_obj: all B instances of the call and their current poses (B, 4, 4).
        present: (B,) bool, the instances that can occlude (not rejected: a diverged pose says
            nothing about the scene).
        idx: (K,) the instances whose windows are rendered into, with ``windows`` (K) and
            ``K_window`` (K, 3, 3) the window cameras.
        K: (3, 3) the camera of the full image.
    """
    boxes = [
        _image_box(m, T, K) if p else None
        for m, T, p in zip(models, T_cam_obj, present, strict=True)
    ]
    pairs = [
        (k, j)
        for k, (b, window) in enumerate(zip(idx, windows, strict=True))
        for j, box in enumerate(boxes)
        if j != b and box is not None and _meets(box, window) and not _behind(box, boxes[b])
        and not _same_object(models[b], T_cam_obj[b], models[j], T_cam_obj[j])
    ]  # fmt: skip
    if not pairs:
        return None
    ks, js = (np.array(x) for x in zip(*pairs, strict=True))
    r = REDUCTION if size % REDUCTION == 0 else 1
    # window pixel (u, v) -> reduced pixel ((u + 1/2) / r - 1/2, ...), folded into the cameras
    A = torch.tensor([[1 / r, 0, 0.5 / r - 0.5], [0, 1 / r, 0.5 / r - 0.5], [0, 0, 1]])
    K_small = A.to(K_window) @ K_window[torch.from_numpy(ks)]
    T = torch.from_numpy(np.ascontiguousarray(T_cam_obj[js]))
    out = renderer.render([models[j] for j in js], T, K_small, size // r)
    depth = torch.where(out.mask, out.depth, torch.full_like(out.depth, torch.inf)).cpu()
    depth = depth.repeat_interleave(r, 1).repeat_interleave(r, 2)
    nearest = torch.full((len(idx), size, size), torch.inf, dtype=depth.dtype)
    where = torch.from_numpy(ks)[:, None, None].expand_as(depth)
    return nearest.scatter_reduce_(0, where, depth, "amin")


def _same_object(model_a, T_a: np.ndarray, model_b, T_b: np.ndarray) -> bool:
    """Two detections of one physical object (hypotheses of the same model less than half its
    diameter apart): one does not occlude the other."""
    if model_a.model_id != model_b.model_id:
        return False
    return bool(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3]) < 0.5 * model_a.diameter)


def _behind(box: tuple, own: tuple | None) -> bool:
    """Whether the instance of ``box`` lies wholly behind the one of ``own`` (its nearest box
    corner farther than the other's farthest one)."""
    return own is not None and box[4] > own[5]


def _image_box(model: ObjectModel, T: np.ndarray, K: np.ndarray) -> tuple | None:
    """(u0, v0, u1, v1, z_near, z_far): the image box and the depth range of the model's
    bounding-box corners, or None when a corner is at or behind the camera plane (no box; such a
    pose is rejected elsewhere)."""
    X = model.bbox_corners_obj @ T[:3, :3].T + T[:3, 3]
    if (X[:, 2] <= 1e-6).any():
        return None
    uv = X @ np.asarray(K).T
    uv = uv[:, :2] / uv[:, 2:]
    return (*uv.min(0), *uv.max(0), X[:, 2].min(), X[:, 2].max())


def _meets(box: tuple, window: CropWindow) -> bool:
    u0, v0, u1, v1 = box[:4]
    x1, y1 = window.x0 + window.side, window.y0 + window.side
    return u1 >= window.x0 - 0.5 and u0 <= x1 - 0.5 and v1 >= window.y0 - 0.5 and v0 <= y1 - 0.5

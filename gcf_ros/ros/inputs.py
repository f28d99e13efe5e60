"""Coarse detections from either input type, checked, as seeds for the refiner.

``gcf_ros_msgs/CoarseDetectionArray`` and ``vision_msgs/Detection3DArray`` both become a list of
:class:`Seed` (one per detection, in array order) plus the reasons of those refused. An empty
``instance_id`` becomes the detection's index in the array (it names the TF frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gcf_ros.ros.conversions import BadInputError, pose_to_matrix


@dataclass(frozen=True)
class Seed:
    """An instance to refine: coarse ``T_cam_obj`` (4, 4), or None when the detection had no pose
    (the node then falls back to the instance's track, or rejects it)."""

    model_id: str
    instance_id: str
    score: float
    T_cam_obj: np.ndarray | None
    note: str = ""  # e.g. "non-unit quaternion normalised"


@dataclass(frozen=True)
class Refused:
    """A detection that cannot be refined: counter ``kind`` and a readable ``reason``; ``T``
    (4, 4) is the coarse pose when it was readable (reported back as the initial pose)."""

    model_id: str
    instance_id: str
    kind: str
    reason: str
    T_cam_obj: np.ndarray | None = None


def parse_coarse(
    msg: Any, known_models: set[str], min_depth_m: float
) -> tuple[list[Seed], list[Refused]]:
    """gcf_ros_msgs/CoarseDetectionArray -> seeds and refusals."""
    raw = [
        (d.model_id, d.instance_id or str(i), float(d.score), d.pose if d.has_pose else None)
        for i, d in enumerate(msg.detections)
    ]
    return _check(raw, known_models, min_depth_m)


def parse_detection3d(
    msg: Any, known_models: set[str], min_depth_m: float, class_map: dict[str, str]
) -> tuple[list[Seed], list[Refused]]:
    """vision_msgs/Detection3DArray -> seeds and refusals (best-scoring hypothesis of each
    detection; class id mapped through ``class_map``, else used as the model id)."""
    raw, refused = [], []
    for i, d in enumerate(msg.detections):
        instance_id = d.id or str(i)
        if not d.results:
            refused.append(Refused("", instance_id, "bad_detection", "detection without results"))
            continue
        best = max(d.results, key=lambda r: r.hypothesis.score)
        class_id = best.hypothesis.class_id
        model_id = class_map.get(class_id, class_id)
        raw.append((model_id, instance_id, float(best.hypothesis.score), best.pose.pose))
    seeds, more = _check(raw, known_models, min_depth_m)
    return seeds, refused + more


def _check(raw, known_models: set[str], min_depth_m: float) -> tuple[list[Seed], list[Refused]]:
    seeds, refused = [], []
    seen: set[tuple[str, str]] = set()
    for model_id, instance_id, score, pose in raw:
        if model_id not in known_models:
            reason = f"unknown model id {model_id!r}"
            refused.append(Refused(model_id, instance_id, "unknown_model", reason))
            continue
        if (model_id, instance_id) in seen:
            reason = f"duplicate instance id {instance_id!r} for {model_id}"
            refused.append(Refused(model_id, instance_id, "duplicate_instance", reason))
            continue
        seen.add((model_id, instance_id))
        if pose is None:
            seeds.append(Seed(model_id, instance_id, score, None))
            continue
        try:
            reading = pose_to_matrix(pose, min_depth_m)
        except BadInputError as err:
            refused.append(Refused(model_id, instance_id, err.kind, str(err)))
            continue
        seeds.append(Seed(model_id, instance_id, score, reading.T, reading.note))
    return seeds, refused

"""Coarse detections from every detection input type, checked, as seeds for the pipeline.

Each input type is one row of :data:`DETECTION_INPUTS`: its message type and a parser that turns
a message into a list of :class:`Seed` (one per detection, in array order) plus the detections
refused. An empty ``instance_id`` becomes the detection's index in the array (it names the TF
frame). At most ``max_detections`` are kept: the highest detector scores (CoarseDetection
``score``, the best hypothesis's score of a Detection3D; ties and NaN scores in array order, NaN
last); the others are refused as ``too_many_detections`` before their poses are read. The parsers
read messages duck-typed, so they are tested without a running graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from vision_msgs.msg import Detection3DArray

from gcf_ros.pipeline.types import Refused, Seed
from gcf_ros.ros.conversions import BadInputError, pose_to_matrix
from gcf_ros_msgs.msg import CoarseDetectionArray

# (message, known model ids, min depth (m), class id -> model id, max detections kept)
#   -> (seeds, refused)
Parser = Callable[
    [Any, set[str], float, dict[str, str], int | None], tuple[list[Seed], list[Refused]]
]


def parse_coarse(
    msg: Any,
    known_models: set[str],
    min_depth_m: float,
    class_map: dict[str, str] | None = None,
    max_detections: int | None = None,
) -> tuple[list[Seed], list[Refused]]:
    """gcf_ros_msgs/CoarseDetectionArray -> seeds and refusals (its detections carry model ids:
    ``class_map`` is not used); ``max_detections`` None: no limit."""
    raw = [
        (d.model_id, d.instance_id or str(i), d.pose if d.has_pose else None, d.score)
        for i, d in enumerate(msg.detections)
    ]
    return _check(raw, known_models, min_depth_m, max_detections)


def parse_detection3d(
    msg: Any,
    known_models: set[str],
    min_depth_m: float,
    class_map: dict[str, str],
    max_detections: int | None = None,
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
        raw.append((model_id, instance_id, best.pose.pose, best.hypothesis.score))
    seeds, more = _check(raw, known_models, min_depth_m, max_detections)
    return seeds, refused + more


#: name (the ``detections_type`` parameter) -> (message type on ``detections``, its parser)
DETECTION_INPUTS: dict[str, tuple[type, Parser]] = {
    "gcf": (CoarseDetectionArray, parse_coarse),
    "vision_msgs": (Detection3DArray, parse_detection3d),
}


def highest_scores(scores: list[float], limit: int | None) -> set[int]:
    """Indices of the ``limit`` highest ``scores`` (all when ``limit`` is None); ties in index
    order, NaN lowest."""
    if limit is None or len(scores) <= limit:
        return set(range(len(scores)))

    def rank(k: int) -> float:
        return math.inf if math.isnan(scores[k]) else -scores[k]

    order = sorted(range(len(scores)), key=rank)  # stable: ties in index order
    return set(order[:limit])


def _check(
    raw, known_models: set[str], min_depth_m: float, max_detections: int | None
) -> tuple[list[Seed], list[Refused]]:
    """Seeds of the valid detections of ``raw`` (model id, instance id, pose, score), the
    ``max_detections`` highest-scoring; the refusals in array order."""
    valid, refused = [], []  # refused: (index in raw, Refused)
    seen: set[tuple[str, str]] = set()
    for i, (model_id, instance_id, pose, score) in enumerate(raw):
        if model_id not in known_models:
            reason = f"unknown model id {model_id!r}"
            refused.append((i, Refused(model_id, instance_id, "unknown_model", reason)))
            continue
        if (model_id, instance_id) in seen:
            reason = f"duplicate instance id {instance_id!r} for {model_id}"
            refused.append((i, Refused(model_id, instance_id, "duplicate_instance", reason)))
            continue
        seen.add((model_id, instance_id))
        valid.append((i, model_id, instance_id, pose, float(score)))
    kept = highest_scores([v[4] for v in valid], max_detections)
    seeds = []
    for k, (i, model_id, instance_id, pose, score) in enumerate(valid):
        if k not in kept:
            reason = (
                f"max_detections_per_frame: {len(valid)} detections, only the "
                f"{max_detections} highest-scoring are refined (score {score:.3g})"
            )
            refused.append((i, Refused(model_id, instance_id, "too_many_detections", reason)))
            continue
        if pose is None:
            seeds.append(Seed(model_id, instance_id, None))
            continue
        try:
            reading = pose_to_matrix(pose, min_depth_m)
        except BadInputError as err:
            refused.append((i, Refused(model_id, instance_id, err.kind, str(err))))
            continue
        seeds.append(Seed(model_id, instance_id, reading.T, reading.note))
    return seeds, [r for _, r in sorted(refused, key=lambda item: item[0])]

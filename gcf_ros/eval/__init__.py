"""Evaluation: the initial-pose protocol and the pose-error metrics of docs/design.md §4.

Pure numpy (plus ``scipy.spatial`` for ADD-S and ``gcf_ros.core.symmetry``), no torch and no ROS,
so that the numbers any method reports are computed by the same small, dependency-light code.
Conventions are those of :mod:`gcf_ros.core`: ``T_cam_obj`` (4, 4) float64 maps object points into
the camera frame, metres, OpenCV optical frame, pixel centres at integer coordinates.
"""

from gcf_ros.eval.metrics import (
    PoseErrors,
    Summary,
    accuracy_curve,
    add,
    add_or_adds,
    add_symmetric,
    adds,
    pose_errors,
    projection_error_px,
    rotation_error_deg,
    summarize,
    translation_error_cm,
)
from gcf_ros.eval.perturb import NOISE_LEVELS, NoiseLevel, perturb_instances, perturb_pose

__all__ = [
    "NOISE_LEVELS",
    "NoiseLevel",
    "PoseErrors",
    "Summary",
    "accuracy_curve",
    "add",
    "add_or_adds",
    "add_symmetric",
    "adds",
    "perturb_instances",
    "perturb_pose",
    "pose_errors",
    "projection_error_px",
    "rotation_error_deg",
    "summarize",
    "translation_error_cm",
]

"""Message fields <-> numpy poses and intrinsics, with the input checks of the node.

Functions here read messages duck-typed (any object with the ROS field names), so they are tested
without a running graph. Poses are ``T_cam_obj`` (4, 4) float64 in the image's optical frame
(REP 103), metres; quaternions are (x, y, z, w) as in geometry_msgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gcf_ros.core.camera import checked_camera_matrix
from gcf_ros.core.geometry import matrix_to_quaternion, quaternion_to_matrix

QUATERNION_TOLERANCE = 1e-3  # |1 - |q|| above this is reported (and normalised)


class BadInputError(ValueError):
    """Input the node refuses, with a message fit for a warning; ``kind`` names the counter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PoseReading:
    """A checked pose: ``T`` (4, 4); ``note`` is non-empty when the quaternion was normalised."""

    T: np.ndarray
    note: str = ""


def pose_to_matrix(pose: Any, min_depth_m: float = 0.0) -> PoseReading:
    """geometry_msgs/Pose -> T (4, 4). Raises BadInputError on NaN, a zero quaternion or a pose
    whose origin is not in front of the camera (z <= ``min_depth_m``); normalises non-unit
    quaternions (and says so in ``note``)."""
    p, o = pose.position, pose.orientation
    t = np.array([p.x, p.y, p.z], dtype=np.float64)
    q = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
    if not (np.isfinite(t).all() and np.isfinite(q).all()):
        raise BadInputError("bad_pose", "pose contains NaN or infinite values")
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise BadInputError("bad_pose", "pose has a zero quaternion")
    note = ""
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
        note = f"non-unit quaternion (|q| = {norm:.4f}) normalised"
    if t[2] <= min_depth_m:
        raise BadInputError("behind_camera", f"pose is behind the camera (z = {t[2]:.3f} m)")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(torch.from_numpy(q / norm)).numpy()
    T[:3, 3] = t
    return PoseReading(T, note)


def matrix_to_pose_fields(T: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, ...]]:
    """T (4, 4) -> ((x, y, z), (qx, qy, qz, qw)) as plain floats (w >= 0)."""
    q = matrix_to_quaternion(torch.from_numpy(np.asarray(T[:3, :3], dtype=np.float64))).numpy()
    q = -q if q[3] < 0 else q
    return tuple(float(v) for v in T[:3, 3]), tuple(float(v) for v in q)


def fill_pose(pose: Any, T: np.ndarray) -> Any:
    """Write T into a geometry_msgs/Pose (or the position/orientation of a Transform)."""
    (x, y, z), (qx, qy, qz, qw) = matrix_to_pose_fields(T)
    target = pose.position if hasattr(pose, "position") else pose.translation
    target.x, target.y, target.z = x, y, z
    rot = pose.orientation if hasattr(pose, "orientation") else pose.rotation
    rot.x, rot.y, rot.z, rot.w = qx, qy, qz, qw
    return pose


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics checked from a sensor_msgs/CameraInfo: K (3, 3), image size (pixels, > 0)."""

    K: np.ndarray
    width: int
    height: int
    frame_id: str
    distorted: bool


def camera_info_to_model(info: Any) -> CameraModel:
    """Intrinsics checked by :func:`~gcf_ros.core.camera.checked_camera_matrix`;
    BadInputError("bad_camera_info") naming the broken rule (a camera_info without its size, 0 x
    0, included: its K cannot be checked against the image)."""
    try:
        K = checked_camera_matrix(info.k, int(info.width), int(info.height))
    except ValueError as err:
        raise BadInputError("bad_camera_info", str(err)) from err
    d = np.asarray(info.d, dtype=np.float64)
    distorted = bool(d.size and np.any(np.abs(d[np.isfinite(d)]) > 1e-9))
    return CameraModel(K, int(info.width), int(info.height), str(info.header.frame_id), distorted)


def check_image_size(camera: CameraModel, width: int, height: int) -> None:
    """BadInputError("size_mismatch") when the camera_info size is not the image's."""
    if (camera.width, camera.height) != (width, height):
        raise BadInputError(
            "size_mismatch",
            f"image is {width} x {height} but camera_info says {camera.width} x {camera.height}",
        )


def stamp_to_s(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)

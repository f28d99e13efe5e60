"""A player node for the bundled LM-O sequence (gcf_ros.eval.sequence): publishes frames and
coarse detections, collects what the refiner publishes. Used by ``gcf-demo`` and the node's
end-to-end tests.

Each frame goes out as ``image`` (bgr8, like most camera drivers), ``camera_info`` and
``detections`` (gcf_ros_msgs/CoarseDetectionArray), all with the same stamp; the coarse poses are
the ground truth perturbed by the evaluation protocol (docs/design.md §4), at a level and seed.
A player made with ``depth=True`` also publishes each frame's depth, registered to the image
(16UC1 millimetres, as a RealSense driver's aligned depth), on ``aligned_depth``, first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from gcf_ros.ros.image_codec import depth_to_image_fields, image_to_rgb
from gcf_ros_msgs.msg import CoarseDetection, CoarseDetectionArray, RefinedPoseArray

if TYPE_CHECKING:  # the message functions import no torch: a feed process starts in ~1 s
    from gcf_ros.eval.sequence import CoarseInstance, SequenceFrame

OPTICAL_FRAME = "camera_color_optical_frame"
DEPTH_TOPIC = "aligned_depth"  # the refiner subscribes to `depth`: remap it here


def stamp_msg(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)


def image_msg(rgb: np.ndarray, stamp: Time, frame_id: str = OPTICAL_FRAME) -> Image:
    """A bgr8 Image of an RGB array."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="bgr8", step=3 * rgb.shape[1])
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.data = bgr.tobytes()
    return msg


def depth_msg(
    depth_m: np.ndarray,
    stamp: Time,
    frame_id: str = OPTICAL_FRAME,
    encoding: str = "16UC1",
    unit_scale: float = 0.001,
) -> Image:
    """A depth Image (16UC1: ``unit_scale`` metres per count, or 32FC1 metres) of (H, W) metres,
    0 or NaN where missing."""
    msg = Image(**depth_to_image_fields(depth_m, encoding, unit_scale))
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def camera_info_msg(K: np.ndarray, width: int, height: int, stamp: Time,
                    frame_id: str = OPTICAL_FRAME) -> CameraInfo:  # fmt: skip
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.k = [float(v) for v in np.asarray(K).reshape(9)]
    msg.d = [0.0] * 5
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


def detections_msg(
    instances: list[CoarseInstance], stamp: Time, frame_id: str = OPTICAL_FRAME
) -> CoarseDetectionArray:
    msg = CoarseDetectionArray()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    if instances:
        from gcf_ros.ros.conversions import fill_pose  # torch
    for inst in instances:
        d = CoarseDetection(model_id=inst.model_id, instance_id=inst.instance_id, score=1.0)
        fill_pose(d.pose, inst.T_init)
        d.has_pose = True
        msg.detections.append(d)
    return msg


@dataclass
class Collected:
    """What came back from the refiner, keyed by the image stamp (seconds)."""

    poses: dict[float, RefinedPoseArray] = field(default_factory=dict)
    poses_received: dict[float, float] = field(default_factory=dict)  # time.monotonic()
    tf: dict[float, TFMessage] = field(default_factory=dict)
    overlays: dict[float, np.ndarray] = field(default_factory=dict)


def _stamp_s(stamp: Time) -> float:
    return round(stamp.sec + 1e-9 * stamp.nanosec, 6)


class Player(Node):
    """Publishes frames and detections (and depth, with ``depth``); records refined poses, /tf
    and overlays."""

    def __init__(
        self, name: str = "gcf_player", overlays: bool = True, depth: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(name, **kwargs)
        # Reliable publishers: a best-effort refiner still matches, a reliable one loses nothing.
        self.image_pub = self.create_publisher(Image, "image", 10)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", 10)
        self.det_pub = self.create_publisher(CoarseDetectionArray, "detections", 10)
        self.depth_pub = self.create_publisher(Image, DEPTH_TOPIC, 10) if depth else None
        self.collected = Collected()
        self._lock = threading.Lock()
        self.create_subscription(RefinedPoseArray, "refined_poses", self._on_poses, 10)
        self.create_subscription(TFMessage, "/tf", self._on_tf, QoSProfile(depth=100))
        if overlays:
            self.create_subscription(Image, "debug/overlay", self._on_overlay, 10)

    def connected(self) -> bool:
        """True once the refiner subscribes to all three inputs and its outputs are discovered
        (a result published before discovery completes would be lost)."""
        pubs = [self.image_pub, self.info_pub, self.det_pub]
        pubs += [self.depth_pub] if self.depth_pub is not None else []
        outputs = ("refined_poses", "/tf")
        return all(p.get_subscription_count() > 0 for p in pubs) and all(
            self.count_publishers(t) > 0 for t in outputs
        )

    def publish_frame(
        self,
        frame: SequenceFrame,
        instances: list[CoarseInstance] | None,
        stamp_s: float,
        depth_m: np.ndarray | None = None,
    ) -> float:
        """Publish depth (when given, and the player has a depth publisher), camera_info, image
        and detections (none with ``instances`` None: an image for tracking only) with one stamp;
        returns the stamp key."""
        stamp = stamp_msg(stamp_s)
        h, w = frame.image_rgb.shape[:2]
        if depth_m is not None and self.depth_pub is not None:
            self.depth_pub.publish(depth_msg(depth_m, stamp))
        self.info_pub.publish(camera_info_msg(frame.K, w, h, stamp))
        self.image_pub.publish(image_msg(frame.image_rgb, stamp))
        if instances is not None:
            self.det_pub.publish(detections_msg(instances, stamp))
        return _stamp_s(stamp)

    def play(
        self,
        frame: SequenceFrame,
        instances: list[CoarseInstance],
        spin_once: Callable[[], None],
        timeout: float = 60.0,
        retry_s: float = 10.0,
        depth_m: np.ndarray | None = None,
    ) -> float | None:
        """Publish a frame and spin until its refined poses arrive; returns the stamp key, or
        None after ``timeout``. Republishes (new stamp) every ``retry_s`` without an answer: a
        frame sent while discovery is still settling, or dropped under load, is not fatal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            key = self.publish_frame(frame, instances, time.time(), depth_m)
            retry = min(deadline, time.monotonic() + retry_s)
            while time.monotonic() < retry:
                if key in self.collected.poses:
                    return key
                spin_once()
        return None

    def _on_poses(self, msg: RefinedPoseArray) -> None:
        now = time.monotonic()
        with self._lock:
            key = _stamp_s(msg.header.stamp)
            self.collected.poses[key] = msg
            self.collected.poses_received[key] = now

    def _on_tf(self, msg: TFMessage) -> None:
        if msg.transforms:
            with self._lock:
                self.collected.tf[_stamp_s(msg.transforms[0].header.stamp)] = msg

    def _on_overlay(self, msg: Image) -> None:
        with self._lock:
            self.collected.overlays[_stamp_s(msg.header.stamp)] = image_to_rgb(msg)

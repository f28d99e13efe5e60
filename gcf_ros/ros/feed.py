"""A camera driver and a detector in their own process, for delivery checks (tests, scripts).

Publishes full-size frames as ``image`` (bgr8) and ``camera_info`` at ``--rate`` Hz with the
chosen reliability, the way a camera driver does: on its own clock, answered or not; and detection
arrays with the frames' stamps, either with every frame (``--detect-every`` N: every N-th) or
``--paced``: one array at a time, on the newest frame once the refiner has answered the previous
one (a detector slower than the refiner; each source frame is shown until its array is answered).
Arrays hold coarse poses (ground truth perturbed at the small level) or nothing (``empty``, cheap
to answer). Frames: ``synthetic`` (a 640x480 noise image, imports no torch: starts in ~1 s), the
bundled sequence (``demo``) or LM-O test frames that are not bundled (``lmo``). It starts once
the refiner subscribes to all three topics and, where the refiner adapts its QoS
(``input_reliability: auto``), once it has (at most ``ADAPT_TIMEOUT_S``): a check of the stream,
not of discovery. At the end it prints one JSON line: ``{"images": n, "detections": [stamps],
"answered": [stamps], "adapted": bool}``.

    python -m gcf_ros.ros.feed --frames 20 --rate 10 --reliability reliable --detections empty
    FASTRTPS_DEFAULT_PROFILES_FILE=config/fastdds_large_messages.xml \\
        python -m gcf_ros.ros.feed --reliability best_effort --source demo --rate 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from gcf_ros.ros.player import OPTICAL_FRAME, camera_info_msg, detections_msg, image_msg, stamp_msg
from gcf_ros.ros.qos import sensor_qos
from gcf_ros_msgs.msg import CoarseDetectionArray, RefinedPoseArray

ADAPT_TIMEOUT_S = 3.0
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
DEMO_IMAGES = {3, 8, 17, 27}  # the bundled frames of LM-O scene 2 (data/demo)
SYNTHETIC_K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])  # LM-O's


@dataclass(frozen=True)
class _Synthetic:
    """A frame without objects: (480, 640, 3) uint8 noise, LM-O's K."""

    image_rgb: np.ndarray
    K: np.ndarray


def load_frames(source: str, count: int = 8, lmo_root: Path | None = None) -> list[Any]:
    """``synthetic``: one noise frame; ``demo``: the bundled SequenceFrames; ``lmo``: ``count``
    LM-O test frames of scene 2 that are not bundled, evenly spread."""
    if source == "synthetic":
        rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        return [_Synthetic(rgb, SYNTHETIC_K)]
    from gcf_ros.eval.sequence import frame_from_bop, load_sequence  # open3d, torch

    if source == "demo":
        return load_sequence()
    from gcf_ros.core.bop import BopDataset

    frames = [f for f in BopDataset(lmo_root or _default_lmo()).frames()
              if f.scene_id == 2 and f.im_id not in DEMO_IMAGES]  # fmt: skip
    return [frame_from_bop(f) for f in frames[:: max(1, len(frames) // count)][:count]]


def _default_lmo() -> Path:
    """GCF_LMO_ROOT, else ``<repo>/../shared/data/lmo`` (as the tests look for it)."""
    here = Path(__file__).resolve().parents[3] / "shared" / "data" / "lmo"
    return Path(os.environ.get("GCF_LMO_ROOT", here))


class Feed(Node):
    """The publishers of a camera driver (image, camera_info) and of a detector (detections);
    it hears the refiner's answers (``refined_poses``) for ``--paced``."""

    def __init__(self, reliability: str) -> None:
        super().__init__("gcf_feed")
        self.reliability = RELIABILITY[reliability]
        qos = sensor_qos(self.reliability)
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.det_pub = self.create_publisher(CoarseDetectionArray, "detections", 10)
        self.answered: set[float] = set()
        self._images: dict[int, Image] = {}
        self.create_subscription(RefinedPoseArray, "refined_poses", self._on_answer, 10)
        self.adapted_at_start = False

    def _on_answer(self, msg: RefinedPoseArray) -> None:
        self.answered.add(_key(msg.header.stamp))

    def subscribed(self) -> bool:
        return all(p.get_subscription_count() > 0
                   for p in (self.image_pub, self.info_pub, self.det_pub))  # fmt: skip

    def adapted(self) -> bool:
        """Every subscription to image and camera_info asks for our reliability."""
        infos = [i for p in (self.image_pub, self.info_pub)
                 for i in self.get_subscriptions_info_by_topic(p.topic_name)]  # fmt: skip
        return bool(infos) and all(i.qos_profile.reliability == self.reliability for i in infos)

    def wait_ready(self, timeout: float) -> bool:
        """Until the refiner's readers are matched and have adapted to us (or ADAPT_TIMEOUT_S
        has passed), three checks in a row: a refiner that switches QoS recreates its readers,
        and what is sent before the new ones match is lost."""
        deadline, first, in_a_row = time.monotonic() + timeout, None, 0
        while in_a_row < 3:
            if time.monotonic() > deadline:
                return False
            ready = self.subscribed()
            if ready:
                first = first or time.monotonic()
                self.adapted_at_start = self.adapted()
                ready = self.adapted_at_start or time.monotonic() - first > ADAPT_TIMEOUT_S
            in_a_row = in_a_row + 1 if ready else 0
            time.sleep(0.1)
        return True

    def stream(self, frames: list[Any], n: int, rate: float, detections: str,
               detect_every: int = 1) -> dict:  # fmt: skip
        """``n`` images at ``rate`` Hz, cycling through ``frames``, an array with every N-th."""
        sent, clock = [], _Clock(rate)
        for k in range(n):
            clock.wait(self)
            stamp = self._publish_frame(frames, k)
            if detections != "none" and k % detect_every == 0:
                frame = frames[k % len(frames)]
                self.det_pub.publish(self._detections(frame, stamp, detections, len(sent)))
                sent.append(_key(stamp))
        self._flush()
        return self._result(n, sent)

    def stream_paced(self, frames: list[Any], n: int, rate: float, detections: str,
                     answer_timeout: float) -> dict:  # fmt: skip
        """Images at ``rate`` Hz; ``n`` arrays, each on the first image of the next source frame
        once the previous array is answered (or ``answer_timeout`` has passed)."""
        sent, clock, current, n_images = [], _Clock(rate), 0, 0
        pending, since = None, 0.0
        while True:
            clock.wait(self)
            if pending is not None and (
                pending in self.answered or time.monotonic() - since > answer_timeout
            ):
                pending, current = None, current + 1
                if len(sent) == n:
                    break
            stamp = self._publish_frame(frames, current)
            n_images += 1
            if pending is None:
                frame = frames[current % len(frames)]
                self.det_pub.publish(self._detections(frame, stamp, detections, len(sent)))
                pending, since = _key(stamp), time.monotonic()
                sent.append(pending)
        self._flush()
        return self._result(n_images, sent)

    def _publish_frame(self, frames: list[Any], k: int):
        """camera_info, then the image, of ``frames[k]`` (cyclic), stamped now; the stamp."""
        i = k % len(frames)
        frame = frames[i]
        if i not in self._images:  # built once per source frame (0.9 MB)
            self._images[i] = image_msg(frame.image_rgb, Time())
        image = self._images[i]
        stamp = stamp_msg(time.time())
        h, w = frame.image_rgb.shape[:2]
        self.info_pub.publish(camera_info_msg(frame.K, w, h, stamp))
        image.header.stamp = stamp
        self.image_pub.publish(image)
        return stamp

    def _result(self, n_images: int, sent: list[float]) -> dict:
        answered = [s for s in sent if s in self.answered]
        return {"images": n_images, "detections": sent, "answered": answered,
                "adapted": self.adapted_at_start}  # fmt: skip

    def _detections(self, frame: Any, stamp, kind: str, seed: int) -> CoarseDetectionArray:
        if kind == "empty":
            return detections_msg([], stamp, OPTICAL_FRAME)
        from gcf_ros.eval.sequence import coarse_instances

        return detections_msg(coarse_instances(frame, "small", seed=seed), stamp, OPTICAL_FRAME)

    def _flush(self) -> None:
        """Deliver what is still in flight before leaving."""
        for pub in (self.image_pub, self.info_pub, self.det_pub):
            if pub is self.det_pub or self.reliability == ReliabilityPolicy.RELIABLE:
                pub.wait_for_all_acked(Duration(seconds=5.0))
        time.sleep(0.2)


class _Clock:
    """Ticks at ``rate`` Hz; the node is spun while waiting (it hears the answers)."""

    def __init__(self, rate: float) -> None:
        self.period, self.next = 1.0 / rate, time.monotonic()

    def wait(self, node: Node) -> None:
        while (left := self.next - time.monotonic()) > 0:
            rclpy.spin_once(node, timeout_sec=left)
        self.next += self.period


def _key(stamp) -> float:
    return round(stamp.sec + 1e-9 * stamp.nanosec, 6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gcf_ros.ros.feed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--reliability", choices=tuple(RELIABILITY), default="reliable")
    p.add_argument("--source", choices=("synthetic", "demo", "lmo"), default="synthetic")
    p.add_argument("--lmo-root", type=Path, help="LM-O folder (default: GCF_LMO_ROOT)")
    p.add_argument("--frames", type=int, default=20, help="images (--paced: detection arrays)")
    p.add_argument("--rate", type=float, default=10.0, help="images per second")
    p.add_argument("--detections", choices=("coarse", "empty", "none"), default="empty")
    p.add_argument("--detect-every", type=int, default=1, help="an array with every N-th image")
    p.add_argument("--paced", action="store_true", help="the next array once one is answered")
    p.add_argument("--timeout", type=float, default=30.0, help="s to wait for the refiner")
    args = p.parse_args(argv)
    if args.detections == "coarse" and args.source == "synthetic":
        p.error("coarse detections need real frames (--source demo or lmo)")
    frames = load_frames(args.source, args.frames, args.lmo_root)
    rclpy.init()
    feed = Feed(args.reliability)
    try:
        if not feed.wait_ready(args.timeout):
            print("feed: nobody subscribes to image, camera_info and detections", file=sys.stderr)
            return 1
        if args.paced:
            result = feed.stream_paced(frames, args.frames, args.rate, args.detections,
                                       args.timeout)  # fmt: skip
        else:
            result = feed.stream(frames, args.frames, args.rate, args.detections,
                                 args.detect_every)  # fmt: skip
        print(json.dumps(result), flush=True)
        return 0
    finally:
        feed.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())

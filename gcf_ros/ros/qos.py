"""The QoS of the node's sensor inputs (``image``, ``camera_info``): fixed, or matched to their
publishers (``input_reliability: auto``, the default).

Why it matters: a 640x480 rgb8 image is 0.9 MB, which Fast DDS sends as ~15 UDP fragments (or
through a shared-memory segment of 512 KB by default, too small for it). Over best effort one lost
fragment loses the image and nothing repairs it: between two processes here a best-effort
subscription received 3 to 6 of 20 such images at 10 Hz, from reliable and best-effort publishers
alike, while reliable on both sides received 20 of 20 (issue 18; test/ros/test_delivery.py and
scripts/delivery_check.py measure it). A reliable subscription, though, does
not match a best-effort publisher at all (DDS: the reader may not ask for more than the writer
offers). ``auto`` therefore does what rosbag2 and RViz do, per topic:

- every publisher offers reliable: subscribe reliable (nothing lost in transport);
- any publisher offers best effort: subscribe best effort (the only choice that matches it; give
  that publisher's process ``config/fastdds_large_messages.xml`` so that its frames arrive);
- no publisher yet: best effort, which matches publishers of either kind, so the first frames of
  whichever camera comes are taken while the decision is made again.

The decision is made again whenever the subscription matches or loses a publisher (its
``matched`` event) and on a slow poll of the graph (``POLL_PERIOD_S``) that catches the rest; the
subscription is recreated only when the decision changes, and each change is logged once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from gcf_ros.resources import share_dir

POLL_PERIOD_S = 1.0
LOST_IMAGES_HINT = 5  # detection arrays dropped as "no_image" before the node's one hint
PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # read by Fast DDS 2.x once, as a process starts it
RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
_NAMES = {RELIABLE: "reliable", BEST_EFFORT: "best effort"}


def input_reliability(setting: str, offered: Iterable[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The reliability to subscribe with, for ``setting`` (``auto``, ``reliable`` or
    ``best_effort``) and the reliabilities the topic's publishers offer (see the module
    docstring). Anything but RELIABLE offered (best effort, system default, unknown) counts as
    best effort: a reliable subscription might not match it."""
    if setting == "reliable":
        return RELIABLE
    if setting == "best_effort":
        return BEST_EFFORT
    if setting != "auto":
        raise ValueError(f"input_reliability must be auto, reliable or best_effort: {setting!r}")
    offered = list(offered)
    return RELIABLE if offered and all(r == RELIABLE for r in offered) else BEST_EFFORT


def sensor_qos(reliability: ReliabilityPolicy) -> QoSProfile:
    """Sensor-data QoS (keep last 5, volatile) with the given reliability."""
    return QoSProfile(depth=qos_profile_sensor_data.depth, reliability=reliability)


class SensorSubscription:
    """A subscription to ``topic`` whose reliability follows ``setting``; with ``auto``,
    :meth:`update` recreates it when its publishers call for another reliability."""

    def __init__(self, node: Node, msg_type: Any, topic: str,
                 callback: Callable[[Any], None], setting: str) -> None:  # fmt: skip
        self._node, self._msg_type, self._callback = node, msg_type, callback
        self.setting = setting
        self.reliability = input_reliability(setting, [])  # auto: best effort until publishers
        self._name = topic  # as given (remapped on creation)
        self._recheck = node.create_guard_condition(self.update) if setting == "auto" else None
        self._sub = self._create()
        self.topic = self._sub.topic_name  # resolved: namespace and remapping applied

    def offered(self) -> list[ReliabilityPolicy]:
        """The reliability each publisher of the topic offers (the ROS graph, now)."""
        infos = self._node.get_publishers_info_by_topic(self.topic)
        return [info.qos_profile.reliability for info in infos]

    def update(self) -> bool:
        """Decide again from the graph; recreate the subscription (and log the change) when the
        decision differs. Returns whether it changed."""
        offered = self.offered()
        wanted = input_reliability(self.setting, offered)
        if wanted == self.reliability:
            return False
        self._node.destroy_subscription(self._sub)
        self.reliability = wanted
        self._sub = self._create()
        self._node.get_logger().info(f"{self.topic}: subscribing {self.describe(offered)}")
        return True

    def describe(self, offered: list[ReliabilityPolicy] | None = None) -> str:
        """``"best effort (input_reliability auto; publishers: 1 reliable)"``."""
        offered = self.offered() if offered is None else offered
        kinds = [_NAMES.get(r, str(r.name).lower()) for r in offered]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds))) or "none"
        return (f"{_NAMES[self.reliability]} (input_reliability {self.setting}; "
                f"publishers: {counts})")  # fmt: skip

    def _create(self):
        events = None
        if self._recheck is not None:  # re-decide after the callback, not inside it
            events = SubscriptionEventCallbacks(matched=lambda _: self._recheck.trigger())
        qos = sensor_qos(self.reliability)
        return self._node.create_subscription(
            self._msg_type, self._name, self._callback, qos, event_callbacks=events
        )


def large_messages_profile() -> Path:
    """The shipped Fast DDS profile for processes that send images (see its comments)."""
    return share_dir() / "config" / "fastdds_large_messages.xml"


@contextlib.contextmanager
def large_messages_env() -> Iterator[str]:
    """``os.environ`` names the shipped profile, unless the user has set one, while inside; yields
    the profile in effect. Enter it before ``rclpy.init`` (Fast DDS reads it once per process);
    subprocesses started inside inherit it."""
    if PROFILE_ENV in os.environ:  # the user's choice ("" included: Fast DDS's defaults)
        yield os.environ[PROFILE_ENV]
        return
    os.environ[PROFILE_ENV] = str(large_messages_profile())
    try:
        yield os.environ[PROFILE_ENV]
    finally:
        os.environ.pop(PROFILE_ENV, None)

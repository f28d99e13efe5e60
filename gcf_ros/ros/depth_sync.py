"""Depth images matched to colour frames by stamp, and checked against them (pure Python, no ROS).

The node's optional ``depth`` input (``use_depth``) is a depth image registered to the colour
image: the same size, the same optical frame, the same K. :meth:`DepthBook.lookup` gives a frame
(on the worker, when it is about to be refined) the depth image of the closest stamp within
``slop`` seconds, decoded to metres (:func:`~gcf_ros.ros.image_codec.depth_to_metres`), or the
reason it has none:

- ``depth_missing``: no depth image within the slop (never sent, lost, or stamped too far off);
- ``depth_size_mismatch`` / ``depth_frame_mismatch``: not registered to the colour image;
- ``bad_depth``: an encoding other than 16UC1 / 32FC1, or a message whose data does not fit.

The frame is then refined RGB-only and its results say why (:attr:`DepthLookup.note`). The frame
never stalls for its depth: when none within the slop has come yet and one still may (no depth
image stamped at or after the frame's has arrived), the lookup waits for it, for at most ``slop``
seconds. Depth images are kept like the colour images that wait for their detections: the newest
``size`` of them, at most ``max_bytes`` in all (the newest always stays).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from gcf_ros.ros.image_codec import ImageDecodeError, depth_to_metres

RGB_ONLY = "refined RGB-only"


@dataclass(frozen=True)
class DepthLookup:
    """A frame's depth: ``depth_m`` (H, W) float32 metres (0 = missing), or None with the counter
    ``kind`` and the ``note`` for its results (both "" when the depth is used)."""

    depth_m: np.ndarray | None
    kind: str = ""
    note: str = ""

    @classmethod
    def refused(cls, kind: str, why: str) -> DepthLookup:
        return cls(None, kind, f"{why}; {RGB_ONLY}")


class DepthBook:
    """The last depth images (sensor_msgs/Image, duck-typed), looked up by stamp (s); thread-safe
    (the executor adds, the worker looks up).

    Args:
        slop: largest stamp difference (s) of a match, and the longest wait for one (s).
        unit_scale: metres per count of 16UC1 images.
        size: depth images kept.
        max_bytes: bound on their total data; None: no bound.
    """

    def __init__(
        self, slop: float, unit_scale: float, size: int = 30, max_bytes: int | None = None
    ) -> None:
        if slop < 0 or unit_scale <= 0 or size < 1 or (max_bytes is not None and max_bytes < 1):
            raise ValueError("slop >= 0, unit_scale > 0, size >= 1 and max_bytes >= 1 required")
        self.slop, self.unit_scale, self.max_bytes = slop, unit_scale, max_bytes
        self._items: deque[tuple[float, Any]] = deque(maxlen=size)
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def add(self, stamp: float, msg: Any) -> None:
        with self._cond:
            self._items.append((stamp, msg))
            total = sum(len(m.data) for _, m in self._items)
            while self.max_bytes is not None and total > self.max_bytes and len(self._items) > 1:
                total -= len(self._items.popleft()[1].data)
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget every depth image (stamps jumped back: a bag loop)."""
        with self._cond:
            self._items.clear()

    def lookup(self, stamp: float, width: int, height: int, frame_id: str) -> DepthLookup:
        """The depth of the colour frame stamped ``stamp`` (s), ``width`` x ``height`` pixels, in
        ``frame_id``: decoded, or refused with the reason (module docstring)."""
        deadline = time.monotonic() + self.slop
        with self._cond:
            while (found := self._closest(stamp)) is None or abs(found[0] - stamp) > self.slop:
                left = deadline - time.monotonic()
                if not self._may_come(stamp) or left <= 0 or not self._cond.wait(left):
                    break
            found = self._closest(stamp)
        if found is None or abs(found[0] - stamp) > self.slop:
            nearest = "" if found is None else f", the nearest {abs(found[0] - stamp):.3f} s away"
            why = f"depth missing: none within sync_slop ({self.slop} s) of the frame{nearest}"
            return DepthLookup.refused("depth_missing", why)
        return self._check(found[1], width, height, frame_id)

    def _check(self, msg: Any, width: int, height: int, frame_id: str) -> DepthLookup:
        if (msg.width, msg.height) != (width, height):
            why = f"depth refused: {msg.width}x{msg.height}, image {width}x{height}"
            return DepthLookup.refused("depth_size_mismatch", why)
        if msg.header.frame_id != frame_id:
            why = (f"depth refused: frame {msg.header.frame_id!r}, image {frame_id!r} (depth must "
                   "be registered to the colour image)")  # fmt: skip
            return DepthLookup.refused("depth_frame_mismatch", why)
        try:
            return DepthLookup(depth_to_metres(msg, self.unit_scale))
        except ImageDecodeError as err:
            return DepthLookup.refused("bad_depth", f"depth refused: {err}")

    def _closest(self, stamp: float) -> tuple[float, Any] | None:
        return min(self._items, key=lambda item: abs(item[0] - stamp), default=None)

    def _may_come(self, stamp: float) -> bool:
        """Whether the frame's depth may still arrive: no depth image stamped at or after the
        frame's has come (a stream arrives in stamp order)."""
        return not self._items or self._items[-1][0] < stamp

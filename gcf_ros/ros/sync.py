"""Approximate-time matching of detection arrays to images (pure Python, no ROS).

Images are kept in a bounded buffer of the newest ``image_buffer`` frames (stamps increasing), at
most ``max_bytes`` in all (the oldest are evicted early to stay under it, and reported). A
detection array is matched to the buffered image with the closest stamp within ``slop`` seconds.
When no image matches yet but one may still come (the array is newer than the newest image minus
``slop``), the array waits in a bounded pending queue, for at most ``max_age`` seconds of wall
time. Arrays that can no longer match are dropped with a reason (:data:`DROP_REASONS`).

Upstream detectors usually publish after the image, with the image's stamp, so most arrays match
on arrival; the pending queue covers detectors that beat a slow camera driver.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

ImageT = TypeVar("ImageT")
DetT = TypeVar("DetT")

#: why a detection array was dropped -> the words of the warning
DROP_REASONS = {
    "stale": "older than the newest image by more than max_stamp_age",
    "future": "stamped more than max_stamp_age ahead of the node's clock",
    "no_image": "no image within sync_slop (never received, evicted, or passed by the stream)",
    "pending_full": "too many arrays waiting for their images (pending_queue_size)",
}


@dataclass
class SyncResult(Generic[ImageT, DetT]):
    """``matched``: (image, detections) pairs to refine; ``dropped``: (detections, reason), the
    reason a key of :data:`DROP_REASONS`; ``evicted``: buffered images evicted before their turn
    to keep the buffer under ``max_bytes``."""

    matched: list[tuple[ImageT, DetT]] = field(default_factory=list)
    dropped: list[tuple[DetT, str]] = field(default_factory=list)
    evicted: list[ImageT] = field(default_factory=list)


class FrameSync(Generic[ImageT, DetT]):
    """Matches detection arrays to images by stamp (seconds, float).

    Args:
        slop: largest stamp difference (s) of a match.
        image_buffer: images kept.
        pending_size: detection arrays kept waiting for their image.
        max_age: arrays older than the newest image by more than this (s) are stale, newer by
            more than this are refused; an array waits at most this long (s, ``clock``).
        max_bytes: bound on the images' total size (``size_of``); None: no bound.
        size_of: an image's size in bytes.
        clock: monotonic seconds (the pending arrays' waiting time).
    """

    def __init__(
        self,
        slop: float,
        image_buffer: int,
        pending_size: int,
        max_age: float,
        max_bytes: int | None = None,
        size_of: Callable[[ImageT], int] = lambda image: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slop < 0 or max_age < 0 or image_buffer < 1 or pending_size < 1:
            raise ValueError("slop, max_age >= 0 and buffer sizes >= 1 required")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes >= 1 required")
        self.slop, self.max_age = slop, max_age
        self._images: deque[tuple[float, ImageT, int]] = deque()
        self._image_buffer, self._max_bytes, self._size_of = image_buffer, max_bytes, size_of
        self._bytes = 0
        self._pending: deque[tuple[float, DetT, float]] = deque()  # stamp, array, arrival
        self._pending_size = pending_size
        self._clock = clock

    @property
    def newest_image_stamp(self) -> float | None:
        return self._images[-1][0] if self._images else None

    @property
    def image_bytes(self) -> int:
        """Total size of the buffered images (``size_of``)."""
        return self._bytes

    def image_count(self) -> int:
        return len(self._images)

    def pending_count(self) -> int:
        return len(self._pending)

    def clear(self) -> list[DetT]:
        """Forget all images; returns the pending detection arrays that are thereby dropped."""
        dropped = [d for _, d, _ in self._pending]
        self._images.clear()
        self._bytes = 0
        self._pending.clear()
        return dropped

    def add_image(self, stamp: float, image: ImageT) -> SyncResult[ImageT, DetT]:
        """Buffer an image; match it with pending arrays and expire those it leaves behind."""
        out: SyncResult[ImageT, DetT] = SyncResult()
        size = self._size_of(image)
        self._images.append((stamp, image, size))
        self._bytes += size
        while len(self._images) > self._image_buffer:
            self._bytes -= self._images.popleft()[2]
        over = self._max_bytes is not None and self._bytes > self._max_bytes
        while over and len(self._images) > 1:  # the newest image always stays
            _, old, old_size = self._images.popleft()
            self._bytes -= old_size
            out.evicted.append(old)
            over = self._bytes > self._max_bytes
        keep: deque[tuple[float, DetT, float]] = deque()
        for det_stamp, dets, arrived in self._pending:
            if abs(det_stamp - stamp) <= self.slop:
                out.matched.append((image, dets))
            elif det_stamp < stamp - self.slop:
                out.dropped.append((dets, "no_image"))
            else:
                keep.append((det_stamp, dets, arrived))
        self._pending = keep
        return out

    def add_detections(
        self, stamp: float, dets: DetT, now: float | None = None
    ) -> SyncResult[ImageT, DetT]:
        """Match an array with a buffered image, or queue it until its image comes; ``now`` (the
        node's clock, s) refuses arrays stamped more than ``max_age`` ahead of it. (Not the newest
        image: while images are delayed or lost, the arrays run ahead of them by right.)"""
        out: SyncResult[ImageT, DetT] = SyncResult()
        best = min(self._images, key=lambda item: abs(item[0] - stamp), default=None)
        if best is not None and abs(best[0] - stamp) <= self.slop:
            out.matched.append((best[1], dets))
            return out
        newest = self.newest_image_stamp
        if newest is not None and stamp < newest - self.max_age:
            out.dropped.append((dets, "stale"))
            return out
        if now is not None and stamp > now + self.max_age:
            out.dropped.append((dets, "future"))
            return out
        if newest is not None and stamp < newest - self.slop:
            out.dropped.append((dets, "no_image"))
            return out
        self._pending.append((stamp, dets, self._clock()))
        while len(self._pending) > self._pending_size:
            out.dropped.append((self._pending.popleft()[1], "pending_full"))
        return out

    def expire(self, now: float) -> list[DetT]:
        """Drop the pending arrays whose image never came: those older than ``now - max_age``
        (``now``: the node's clock, s) and those that have waited longer than ``max_age``
        (``clock``: whatever their stamps, so an array stamped in the future never waits for
        ever). The node calls this periodically, so arrays do not wait for a stopped camera."""
        waited = self._clock() - self.max_age
        keep: deque[tuple[float, DetT, float]] = deque()
        dropped = []
        for item in self._pending:
            stamp, dets, arrived = item
            if stamp >= now - self.max_age and arrived >= waited:
                keep.append(item)
            else:
                dropped.append(dets)
        self._pending = keep
        return dropped

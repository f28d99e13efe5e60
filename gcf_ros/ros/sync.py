"""Approximate-time matching of detection arrays to images (pure Python, no ROS).

Images are kept in a bounded buffer of the newest ``image_buffer`` frames (stamps increasing). A
detection array is matched to the buffered image with the closest stamp within ``slop`` seconds.
When no image matches yet but one may still come (the array is newer than the newest image minus
``slop``), the array waits in a bounded pending queue. Arrays that can no longer match are dropped
with a reason: ``stale`` (older than the newest image by more than ``max_age``), ``no_image`` (no
image within the slop: never received, evicted, or passed by the stream), ``pending_full``.

Upstream detectors usually publish after the image, with the image's stamp, so most arrays match
on arrival; the pending queue covers detectors that beat a slow camera driver.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

ImageT = TypeVar("ImageT")
DetT = TypeVar("DetT")


@dataclass
class SyncResult(Generic[ImageT, DetT]):
    """``matched``: (image, detections) pairs to refine; ``dropped``: (detections, reason), the
    reason one of ``stale``, ``no_image``, ``pending_full``."""

    matched: list[tuple[ImageT, DetT]] = field(default_factory=list)
    dropped: list[tuple[DetT, str]] = field(default_factory=list)


class FrameSync(Generic[ImageT, DetT]):
    """Matches detection arrays to images by stamp (seconds, float)."""

    def __init__(self, slop: float, image_buffer: int, pending_size: int, max_age: float) -> None:
        if slop < 0 or max_age < 0 or image_buffer < 1 or pending_size < 1:
            raise ValueError("slop, max_age >= 0 and buffer sizes >= 1 required")
        self.slop, self.max_age = slop, max_age
        self._images: deque[tuple[float, ImageT]] = deque(maxlen=image_buffer)
        self._pending: deque[tuple[float, DetT]] = deque()
        self._pending_size = pending_size

    @property
    def newest_image_stamp(self) -> float | None:
        return self._images[-1][0] if self._images else None

    def pending_count(self) -> int:
        return len(self._pending)

    def clear(self) -> list[DetT]:
        """Forget all images; returns the pending detection arrays that are thereby dropped."""
        dropped = [d for _, d in self._pending]
        self._images.clear()
        self._pending.clear()
        return dropped

    def add_image(self, stamp: float, image: ImageT) -> SyncResult[ImageT, DetT]:
        """Buffer an image; match it with pending arrays and expire those it leaves behind."""
        self._images.append((stamp, image))
        out: SyncResult[ImageT, DetT] = SyncResult()
        keep: deque[tuple[float, DetT]] = deque()
        for det_stamp, dets in self._pending:
            if abs(det_stamp - stamp) <= self.slop:
                out.matched.append((image, dets))
            elif det_stamp < stamp - self.slop:
                out.dropped.append((dets, "no_image"))
            else:
                keep.append((det_stamp, dets))
        self._pending = keep
        return out

    def add_detections(self, stamp: float, dets: DetT) -> SyncResult[ImageT, DetT]:
        """Match an array with a buffered image, or queue it until its image comes."""
        out: SyncResult[ImageT, DetT] = SyncResult()
        best = min(self._images, key=lambda item: abs(item[0] - stamp), default=None)
        if best is not None and abs(best[0] - stamp) <= self.slop:
            out.matched.append((best[1], dets))
            return out
        newest = self.newest_image_stamp
        if newest is not None and stamp < newest - self.max_age:
            out.dropped.append((dets, "stale"))
            return out
        if newest is not None and stamp < newest - self.slop:
            out.dropped.append((dets, "no_image"))
            return out
        self._pending.append((stamp, dets))
        while len(self._pending) > self._pending_size:
            out.dropped.append((self._pending.popleft()[1], "pending_full"))
        return out

    def expire(self, now: float) -> list[DetT]:
        """Drop pending arrays older than ``now - max_age`` (their image never came): the node
        calls this periodically with its clock, so arrays do not wait for a stopped camera."""
        dropped = [d for s, d in self._pending if s < now - self.max_age]
        self._pending = deque((s, d) for s, d in self._pending if s >= now - self.max_age)
        return dropped

"""camera_info matched to frames by stamp (pure Python, no ROS).

Each frame is refined with the camera_info of its own stamp. :meth:`CameraBook.lookup` answers,
in this order:

- ``exact``: a camera_info with the image's stamp;
- ``inexact``: the closest one within ``slop`` seconds;
- ``newest``: none within the slop, but every buffered camera_info, at least ``min_static`` of
  them, has the same K and size (a static camera, or a driver that stamps camera_info apart from
  its images): the newest one;
- else it refuses the frame (``camera_info_unmatched``): K changed recently (or too few
  camera_info came to tell), so guessing could refine with another frame's intrinsics.

The executor may deliver a frame before the camera_info published just ahead of it (another
topic). So when no camera_info matches yet and one may still come (none has arrived with a stamp
at or after the image's), the lookup waits for it, up to ``wait_s``. A stream whose camera_info
stamps never match its images (the ``newest`` case) is not waited for again until one matches.
The matched camera_info's size must be the image's (``size_mismatch``); one without a size is
refused on arrival (:func:`~gcf_ros.ros.conversions.camera_info_to_model`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from gcf_ros.ros.conversions import BadInputError, CameraModel, check_image_size

EXACT_S = 1e-6  # stamps closer than this are the same stamp (float seconds of ns stamps)


@dataclass(frozen=True)
class CameraMatch:
    """The camera of a frame; ``how``: ``exact``, ``inexact`` or ``newest`` (module docstring);
    ``waited_s``: how long the lookup waited for it."""

    camera: CameraModel
    how: str
    waited_s: float = 0.0


def _same(a: CameraModel, b: CameraModel) -> bool:
    return (a.width, a.height) == (b.width, b.height) and np.array_equal(a.K, b.K)


class CameraBook:
    """The last ``size`` camera_info messages, looked up by stamp; thread-safe (the executor adds,
    the worker looks up)."""

    def __init__(
        self, slop: float, size: int = 100, wait_s: float = 0.2, min_static: int = 3
    ) -> None:
        if slop < 0 or size < min_static or min_static < 1 or wait_s < 0:
            raise ValueError("slop >= 0, size >= min_static >= 1 and wait_s >= 0 required")
        self.slop, self.wait_s, self.min_static = slop, wait_s, min_static
        self._cameras: deque[tuple[float, CameraModel]] = deque(maxlen=size)
        self._same_run = 0  # how many of the newest cameras equal the newest one
        self._stamped = True  # camera_info stamps match the images': worth waiting for
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._cameras)

    def add(self, stamp: float, camera: CameraModel) -> None:
        with self._cond:
            same = bool(self._cameras) and _same(self._cameras[-1][1], camera)
            self._same_run = self._same_run + 1 if same else 1
            self._cameras.append((stamp, camera))
            self._cond.notify_all()

    def lookup(self, stamp: float, width: int, height: int) -> CameraMatch:
        """The camera of the image stamped ``stamp`` (s), of ``width`` x ``height`` pixels.

        Raises BadInputError: ``no_camera_info``, ``camera_info_unmatched`` or ``size_mismatch``.
        """
        start = time.monotonic()
        with self._cond:
            while (found := self._by_stamp(stamp)) is None and self._may_come(stamp):
                left = start + self.wait_s - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            waited = time.monotonic() - start
            if found is not None:
                self._stamped = True
                check_image_size(found[1], width, height)
                return CameraMatch(found[1], "exact" if found[0] < EXACT_S else "inexact", waited)
            if not self._cameras:
                raise BadInputError("no_camera_info", "no valid camera_info received yet")
            newest = self._cameras[-1][1]
            if self._same_run < max(len(self._cameras), self.min_static):
                raise BadInputError(
                    "camera_info_unmatched",
                    f"no camera_info within sync_slop ({self.slop} s) of the frame, and K or the "
                    f"size changed among the recent ones (or fewer than {self.min_static} came): "
                    "refused rather than refined with another frame's intrinsics (publish "
                    "camera_info with each image's stamp)",
                )
            self._stamped = False
            check_image_size(newest, width, height)
            return CameraMatch(newest, "newest", waited)

    def _by_stamp(self, stamp: float) -> tuple[float, CameraModel] | None:
        """(|stamp difference|, camera) of the closest camera within the slop, or None."""
        best = min(
            ((abs(s - stamp), camera) for s, camera in self._cameras),
            key=lambda item: item[0],
            default=None,
        )
        return best if best is not None and best[0] <= self.slop else None

    def _may_come(self, stamp: float) -> bool:
        """Whether the frame's camera_info may still arrive: none yet, or the stream stamps its
        camera_info like its images and the newest one is older than the frame."""
        if not self._cameras:
            return True
        return self._stamped and self._cameras[-1][0] < stamp

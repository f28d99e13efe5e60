"""Tracks: the last refined pose of each instance, used to seed the next frame (no ROS).

An instance is keyed by (model id, instance id). A track is replaced by every new refinement of
its instance, removed when that refinement is rejected, and expires when the image stream has moved
``timeout`` seconds past its stamp.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """Last accepted pose T_cam_obj (4, 4) of an instance at image stamp ``stamp`` (s)."""

    model_id: str
    instance_id: str
    T_cam_obj: np.ndarray
    stamp: float
    frame_id: str


class TrackTable:
    """Thread-safe map (model id, instance id) -> Track."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tracks: dict[tuple[str, str], Track] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracks)

    def update(self, track: Track) -> None:
        with self._lock:
            self._tracks[(track.model_id, track.instance_id)] = track

    def remove(self, model_id: str, instance_id: str) -> None:
        with self._lock:
            self._tracks.pop((model_id, instance_id), None)

    def get(self, model_id: str, instance_id: str) -> Track | None:
        with self._lock:
            return self._tracks.get((model_id, instance_id))

    def active(self, stamp: float, frame_id: str) -> list[Track]:
        """Tracks usable at image ``stamp`` in ``frame_id``; drops the expired ones."""
        with self._lock:
            expired = [k for k, t in self._tracks.items() if stamp - t.stamp > self.timeout]
            for key in expired:
                del self._tracks[key]
            return [t for t in self._tracks.values() if t.frame_id == frame_id]

    def clear(self) -> int:
        """Remove every track; returns how many there were."""
        with self._lock:
            n = len(self._tracks)
            self._tracks.clear()
            return n

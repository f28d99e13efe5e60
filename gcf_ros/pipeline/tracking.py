"""Tracks and seeds: which instances a frame refines, and from which pose (no ROS).

A track is the last accepted pose of an instance. It is replaced by every new refinement of its
instance, removed when that refinement is rejected (or its detection refused), and expires when the
image stream has moved ``timeout`` seconds past its stamp. With tracking on, a detection without a
pose is seeded from its track, and every tracked instance the detections do not cover is refined
from its track; such seeds are marked ``Seed.tracked`` (the pipeline gives them
``tracking_iterations``: :meth:`~gcf_ros.pipeline.pipeline.FramePipeline.process`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gcf_ros.pipeline.types import Observation, Refused, Seed

Report = Callable[[str, str], None]  # (counter kind, readable message) of a refused input


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


def seed_frame(
    obs: Observation, tracks: TrackTable | None, report: Report, max_seeds: int | None = None
) -> tuple[list[Seed], list[Refused]]:
    """Seeds of a frame: its detections with a pose, those without one seeded from their track,
    then the tracked instances the detections do not cover, the most recent first, while there
    are fewer than ``max_seeds`` (None: no limit; the others wait for a later frame, reported as
    ``too_many_tracks``); and the refused detections. ``tracks`` None: tracking off. Every refusal
    (and normalised quaternion) goes to ``report``; detections in another frame than the image's
    are all dropped."""
    seeds: list[Seed] = []
    refused: list[Refused] = []
    dets = obs.detections
    if dets is not None:
        if dets.frame_id and dets.frame_id != obs.frame_id:
            report(
                "frame_mismatch",
                f"detections in frame {dets.frame_id!r} but the image is in {obs.frame_id!r}: "
                "poses must be in the image's optical frame",
            )
            return [], []
        seeds, refused = list(dets.seeds), list(dets.refused)
    for r in refused:
        report(r.kind, f"detection {r.model_id}/{r.instance_id} refused: {r.reason}")
    out = []
    for s in seeds:
        if s.note:
            report("non_unit_quaternion", f"{s.model_id}/{s.instance_id}: {s.note}")
        if s.T_cam_obj is not None:
            out.append(s)
            continue
        track = tracks.get(s.model_id, s.instance_id) if tracks is not None else None
        if track is not None:
            out.append(dataclasses.replace(s, T_cam_obj=track.T_cam_obj, tracked=True))
        else:
            reason = "detection has no pose and no track"
            refused.append(Refused(s.model_id, s.instance_id, "no_pose", reason))
            report("no_pose", f"{s.model_id}/{s.instance_id}: {reason}")
    if tracks is not None:
        covered = {(s.model_id, s.instance_id) for s in out} | {
            (r.model_id, r.instance_id) for r in refused
        }
        active = sorted(tracks.active(obs.stamp, obs.frame_id), key=lambda t: -t.stamp)
        extra = [t for t in active if (t.model_id, t.instance_id) not in covered]
        room = len(extra) if max_seeds is None else max(max_seeds - len(out), 0)
        out += [Seed(t.model_id, t.instance_id, t.T_cam_obj, tracked=True) for t in extra[:room]]
        if len(extra) > room:
            report(
                "too_many_tracks",
                f"{len(extra) - room} tracked instance(s) not refined in this frame: "
                f"max_detections_per_frame ({max_seeds}) reached",
            )
    return out, refused

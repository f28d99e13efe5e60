"""The frame pipeline: an :class:`Observation` in, seeds from detections and tracks, one batched
refinement, a :class:`FrameResult` out (no ROS).

    pipeline = FramePipeline(Refiner.from_checkpoint(registry))
    result = pipeline.process(Observation(stamp, frame_id, rgb, K, Detections.of_poses(ids, T)))

With ``obs.depth_m`` (depth registered to the image) the refiner's depth term runs as well; an
observation's ``depth_note`` (why its depth was not used) follows each refined instance's reason.

The ROS node, ``gcf-bench`` and the tests drive this one pipeline. It also keeps the state of the
image stream: the tracks, and stamp epochs: a jump back in stamps (a bag loop, a clock reset)
clears the tracks and starts a new epoch, and a frame of an older epoch that finishes late neither
re-seeds the tracks nor holds back the frames of the new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gcf_ros.core.draw import draw_axes, draw_outline, outline_contours
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.gcf.refiner import REJECTED, Detection, Refiner, RefineResult
from gcf_ros.pipeline.tracking import Report, Track, TrackTable, seed_frame
from gcf_ros.pipeline.types import FrameResult, InstanceOutput, Observation, Refused, Seed

JUMP_BACK_S = 1.0  # image stamps this far behind the previous one start a new epoch
REFINED_RGB, REJECTED_RGB = (40, 230, 90), (240, 60, 40)


def _default_child_frame(model_id: str, instance_id: str, tf_name: str) -> str:
    return f"{model_id}_{instance_id}"


def _ignore(kind: str, message: str) -> None:
    pass


class FramePipeline:
    """Refines frames with ``refiner``; thread-safe between one refining thread and the stamp
    callbacks (:meth:`stamp_image`, :meth:`superseded`, ``tracks``).

    Args:
        refiner: the refiner (its registry names the known models).
        child_frame: (model id, instance id, tf name) -> the instance's TF frame name.
        track_timeout: tracks older than this (s, image stamps) expire.
        report: gets (counter kind, message) of every refused input, as it is refused.
        max_seeds: instances refined per frame at most (tracks fill the places the detections
            leave; the detections themselves are limited when read); None: no limit.
    """

    def __init__(
        self,
        refiner: Refiner,
        child_frame: Callable[[str, str, str], str] = _default_child_frame,
        track_timeout: float = 1.0,
        report: Report = _ignore,
        max_seeds: int | None = None,
    ) -> None:
        self.refiner = refiner
        self.registry: ModelRegistry = refiner.registry
        self.tracks = TrackTable(track_timeout)
        self._child_frame = child_frame
        self._report = report
        self._max_seeds = max_seeds
        self._mesh_uris = {
            m: Path(self.registry.spec(m).mesh_path).resolve().as_uri() for m in self.registry.ids
        }
        self._lock = threading.Lock()  # the stamps and epoch below
        self._epoch = 0
        self._last_stamp: float | None = None
        self._last_done = -np.inf

    # ------------------------------------------------------------------------ the stream
    def stamp_image(self, stamp: float) -> tuple[int, float]:
        """Note the stamp of an arriving image: (its epoch, how far the stamps jumped back, s;
        0.0 when they did not). A jump back of more than JUMP_BACK_S clears the tracks and
        starts a new epoch."""
        with self._lock:
            jump = 0.0
            if self._last_stamp is not None and stamp < self._last_stamp - JUMP_BACK_S:
                jump = self._last_stamp - stamp
                self.tracks.clear()
                self._last_done = -np.inf
                self._epoch += 1
            self._last_stamp = stamp
            return self._epoch, jump

    def superseded(self, stamp: float) -> bool:
        """Whether a newer frame (of this epoch) was refined already: a tracking-only frame
        stamped ``stamp`` has nothing left to do."""
        with self._lock:
            return stamp <= self._last_done

    # ------------------------------------------------------------------------- a frame
    def process(
        self, obs: Observation, tracking: bool = False, tracking_iterations: int | None = None
    ) -> FrameResult:
        """Seed, refine and describe one frame; with ``tracking``, seed from the tracks and update
        them with the outcome. ``tracking_iterations``: the iterations of the seeds taken from a
        track (warm starts; None: the refiner's count, as fresh detections). In a frame with both,
        all are refined in one batch, each tracked instance leaving it after its
        ``tracking_iterations`` (status MAX_ITERATIONS unless it converged first)."""
        tracks = self.tracks if tracking else None
        seeds, refused = seed_frame(obs, tracks, self._report, self._max_seeds)
        detections = [
            Detection(s.model_id, s.T_cam_obj, s.instance_id,
                      iterations=tracking_iterations if s.tracked else None)
            for s in seeds
        ]  # fmt: skip
        depth = {} if obs.depth_m is None else {"depth_m": obs.depth_m}  # the depth term runs
        results = self.refiner.refine(obs.rgb, obs.K, detections, **depth)
        result = FrameResult(
            tuple(self._output(s, r, obs.depth_note) for s, r in zip(seeds, results, strict=True)),
            tuple(_refused_output(r) for r in refused),
        )
        with self._lock:
            if obs.epoch == self._epoch:  # a frame of an older epoch leaves the stream alone
                if tracking:
                    self._update_tracks(result, obs)
                self._last_done = max(self._last_done, obs.stamp)
        return result

    def overlay(self, obs: Observation, result: FrameResult) -> np.ndarray:
        """``obs.rgb`` with the result drawn on it (:func:`draw_overlay`)."""
        return draw_overlay(obs.rgb, obs.K, result, self.registry, self.refiner.renderer)

    def _output(self, seed: Seed, r: RefineResult, note: str = "") -> InstanceOutput:
        """The instance's output; ``note`` (the frame's depth note) follows the refiner's reason."""
        spec = self.registry.spec(seed.model_id)
        model = self.registry.get(seed.model_id)
        return InstanceOutput(
            model_id=seed.model_id,
            instance_id=seed.instance_id,
            child_frame=self._child_frame(
                seed.model_id, seed.instance_id, spec.tf_name or seed.model_id
            ),
            T_cam_obj=r.T_cam_obj,
            T_init=r.T_init,
            confidence=r.confidence,
            iterations=r.iterations,
            status=r.status,
            reason="; ".join(filter(None, (r.status_reason, note))),
            mesh_uri=self._mesh_uris[seed.model_id],
            mesh_scale=spec.scale,
            bbox_obj=np.stack([model.bbox_min, model.bbox_max]).astype(np.float64),
        )

    def _update_tracks(self, result: FrameResult, obs: Observation) -> None:
        for inst in result.instances:
            if inst.accepted:
                T, key = inst.T_cam_obj, inst.key
                self.tracks.update(Track(*key, T, obs.stamp, obs.frame_id))
            else:
                self.tracks.remove(inst.model_id, inst.instance_id)


def _refused_output(r: Refused) -> InstanceOutput:
    T = np.eye(4)
    return InstanceOutput(r.model_id, r.instance_id, "", T, T, 0.0, 0, REJECTED, r.reason)


def draw_overlay(
    rgb: np.ndarray,
    K: np.ndarray,
    result: FrameResult,
    registry: ModelRegistry,
    renderer: RaycastRenderer | None = None,
) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with the refined outlines (green) and axes drawn on a copy; rejected
    instances outlined in red; refused ones (never refined) not drawn."""
    h, w = rgb.shape[:2]
    out = rgb
    for inst in result.instances:
        if inst.model_id not in registry or not inst.iterations:
            continue
        model = registry.get(inst.model_id)
        color = REFINED_RGB if inst.accepted else REJECTED_RGB
        contours = outline_contours(model, K, inst.T_cam_obj, (w, h), renderer)
        out = draw_outline(out, contours, color)
        if inst.accepted:
            out = draw_axes(out, K, inst.T_cam_obj, 0.5 * model.diameter)
    return out

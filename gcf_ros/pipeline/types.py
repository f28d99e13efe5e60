"""What goes into the frame pipeline and what comes out (no ROS).

Poses are ``T_cam_obj`` (4, 4) float64 in the image's optical frame (REP 103), metres. An instance
is keyed by (model id, instance id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gcf_ros.gcf.refiner import REJECTED


@dataclass(frozen=True)
class Seed:
    """An instance to refine: coarse ``T_cam_obj`` (4, 4), or None when the detection had no pose
    (the pipeline then falls back to the instance's track, or refuses it)."""

    model_id: str
    instance_id: str
    T_cam_obj: np.ndarray | None
    note: str = ""  # e.g. "non-unit quaternion normalised"
    tracked: bool = False  # T_cam_obj is the instance's track (its last accepted pose)


@dataclass(frozen=True)
class Refused:
    """A detection that cannot be refined: counter ``kind`` and a readable ``reason``."""

    model_id: str
    instance_id: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Detections:
    """One checked detection array: its seeds (array order) and the detections refused while
    reading it; ``frame_id`` is the array's frame ('' = the image's)."""

    frame_id: str
    seeds: tuple[Seed, ...]
    refused: tuple[Refused, ...] = ()

    @classmethod
    def of_poses(cls, model_ids: Sequence[str], T_init: np.ndarray) -> Detections:
        """Seeds of parallel model ids and (N, 4, 4) poses; instance ids "0", "1", ..."""
        seeds = zip(model_ids, np.asarray(T_init, dtype=np.float64), strict=True)
        return cls("", tuple(Seed(m, str(k), T) for k, (m, T) in enumerate(seeds)))


@dataclass(frozen=True)
class Observation:
    """One camera frame to refine.

    Attributes:
        stamp: image stamp, seconds.
        frame_id: the image's optical frame.
        rgb: (H, W, 3) uint8 image.
        K: (3, 3) intrinsics of ``rgb``.
        detections: the coarse detections matched to the image; None for a tracking-only frame.
        epoch: the stamp epoch the image arrived in (:meth:`FramePipeline.stamp_image`).
        depth_m: (H, W) float32 depth registered to ``rgb`` (same size and ``K``), metres, 0 or
            NaN where missing; None: refine RGB-only.
        depth_note: why the frame's depth was not used (e.g. "depth refused: 320x240, image
            640x480; refined RGB-only"), added to every refined instance's reason; "" when not.
    """

    stamp: float
    frame_id: str
    rgb: np.ndarray
    K: np.ndarray
    detections: Detections | None = None
    epoch: int = 0
    depth_m: np.ndarray | None = None
    depth_note: str = ""

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        if np.shape(self.K) != (3, 3):
            raise ValueError(f"K must be (3, 3), got {np.shape(self.K)}")
        depth = self.depth_m
        if depth is not None and (depth.shape != self.rgb.shape[:2] or depth.dtype != np.float32):
            raise ValueError(
                f"depth_m must be (H, W) = {self.rgb.shape[:2]} float32 (the image's size), got "
                f"{depth.shape} {depth.dtype}"
            )


@dataclass(frozen=True)
class InstanceOutput:
    """One refined (or rejected) instance of a frame.

    ``T_cam_obj``/``T_init`` (4, 4) in the image's optical frame, metres; ``mesh_uri`` and
    ``mesh_scale`` describe the marker mesh (mesh units -> metres); ``bbox_obj`` (2, 3) the model's
    axis-aligned box (min, max) in its own frame, metres.
    """

    model_id: str
    instance_id: str
    child_frame: str
    T_cam_obj: np.ndarray
    T_init: np.ndarray
    confidence: float
    iterations: int
    status: int
    reason: str
    mesh_uri: str = ""
    mesh_scale: float = 1.0
    bbox_obj: np.ndarray | None = None

    @property
    def accepted(self) -> bool:
        return self.status != REJECTED

    @property
    def key(self) -> tuple[str, str]:
        return (self.model_id, self.instance_id)


@dataclass(frozen=True)
class FrameResult:
    """The outcome of one frame.

    Attributes:
        refined: one output per seed, seed order (REJECTED ones carry the refiner's reason).
        refused: one REJECTED output per detection that could not be refined (0 iterations,
            identity poses).
    """

    refined: tuple[InstanceOutput, ...]
    refused: tuple[InstanceOutput, ...]

    @property
    def instances(self) -> tuple[InstanceOutput, ...]:
        """Everything to publish: the refined outputs, then the refused ones."""
        return self.refined + self.refused

    @property
    def rejected(self) -> int:
        """How many refinements were REJECTED (refused detections not included)."""
        return sum(not inst.accepted for inst in self.refined)

"""The frame pipeline, between the refiner (gcf_ros.gcf) and its drivers (the ROS node, gcf-bench):
an Observation in, tracks and seeds, one batched refinement, a FrameResult out. No ROS here."""

from gcf_ros.pipeline.pipeline import FramePipeline, draw_overlay
from gcf_ros.pipeline.types import (
    Detections,
    FrameResult,
    InstanceOutput,
    Observation,
    Refused,
    Seed,
)

__all__ = [
    "Detections",
    "FramePipeline",
    "FrameResult",
    "InstanceOutput",
    "Observation",
    "Refused",
    "Seed",
    "draw_overlay",
]

"""The parameters of the ``gcf_refiner`` node: names, defaults, descriptions (one table).

``config/gcf.yaml`` and the README's table carry the same defaults (a test keeps them equal); the
node declares every parameter with its description, so ``ros2 param describe`` documents them.
Parameters whose default is None are declared unset: the refiner then takes the value the weights
file records (``RefinerConfig.resolve``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gcf_ros.gcf.weights_meta import DEFAULT_WINDOW_SIZE, MIN_CONFIDENCE
from gcf_ros.ros.inputs import DETECTION_INPUTS

DETECTION_TYPES = tuple(DETECTION_INPUTS)
# The solver terms a node can run (gcf_ros.gcf.terms; "contour" needs per-detection masks, which
# the detection messages do not carry).
NODE_TERMS = ("field", "mask", "region")
INPUT_RELIABILITY = ("auto", "reliable", "best_effort")  # gcf_ros.ros.qos


def _p(default, description: str, dynamic: bool = False):
    return field(default=default, metadata={"description": description, "dynamic": dynamic})


@dataclass(frozen=True)
class NodeParams:
    """Parameters of ``gcf_refiner``; ``dynamic`` ones may be changed while it runs."""

    models: str = _p(
        "",
        "model registry YAML (id -> mesh, scale, symmetry, tf_name); '' = packaged config/models.yaml",
    )
    checkpoint: str = _p(
        "",
        "GCF network weights (.pt path, or the name of a shipped file: gcf_lmo_s64.pt is the "
        "faster S = 64 network); '' = the shipped weights/gcf_lmo.pt",
    )
    device: str = _p(
        "cpu", "torch device for the network: cpu or cuda (falls back to cpu with a warning)"
    )
    threads: int = _p(
        1,
        "torch CPU threads (process-wide); 0 = torch's default. 1 is as fast for 64 px windows and avoids OpenMP spin-waiting on busy CPUs (docs/performance.md)",
    )
    iterations: int = _p(8, "maximum refinement iterations per frame", dynamic=True)
    solver: str = _p(
        "gauss_newton",
        "pose solver: gauss_newton (damped, weighted) or gradient (the paper's steps)",
    )
    terms: str = _p(
        "",
        "solver terms, comma-separated: field (the learned correspondence field), mask (the "
        "network's visible-mask head: the silhouette), region (colour statistics, no training); "
        "'' = the refiner's defaults",
    )
    window_size: int | None = _p(
        None,
        "side of the square network window, pixels; unset = the size the weights were trained at "
        f"({DEFAULT_WINDOW_SIZE} for files that record none)",
    )
    min_confidence: float | None = _p(
        None,
        "results with a lower mean predicted weight are REJECTED; unset = the value the weights "
        f"file records ({MIN_CONFIDENCE} for files that record none)",
        dynamic=True,
    )
    tf_child_frame_format: str = _p(
        "{model_id}_{instance_id}",
        "TF child frame name; fields {model_id}, {instance_id}, {tf_name}",
    )
    detections_type: str = _p(
        "gcf",
        "type on 'detections': gcf (gcf_ros_msgs/CoarseDetectionArray) or vision_msgs (Detection3DArray)",
    )
    class_id_map: str = _p(
        "", "vision_msgs only: 'class_id:model_id,...'; class ids not listed are used as model ids"
    )
    input_reliability: str = _p(
        "auto",
        f"QoS reliability of image and camera_info, one of {INPUT_RELIABILITY}: auto = as the "
        "publishers offer (reliable when all of them are: no frame lost in transport; else, or "
        "with none yet, best effort), reliable (matches reliable publishers only) or best_effort",
    )
    sync_slop: float = _p(
        0.01, "largest stamp difference (s) between a detection array and its image"
    )
    max_stamp_age: float = _p(
        2.0,
        "detection arrays older than the newest image by more than this (s) are dropped as stale, "
        "ahead of the node's clock by more than this refused as future; an array waits at most "
        "this long (s) for its image",
    )
    image_buffer_size: int = _p(30, "images kept for matching late detection arrays")
    image_buffer_mb: int = _p(
        256,
        "memory bound of the image buffer, MB: the oldest images are evicted early (counted) to "
        "stay under it",
    )
    max_image_pixels: int = _p(
        16777216,
        "larger images (width x height, or more data than 4 bytes a pixel) are refused before "
        "buffering; 16777216 = 4096 x 4096",
    )
    pending_queue_size: int = _p(10, "detection arrays waiting for their image")
    max_detections_per_frame: int = _p(
        32,
        "detections refined per frame at most: the extras (lowest detector scores) are REJECTED "
        "with the reason; tracked instances fill the places left",
    )
    work_queue_size: int = _p(
        1,
        "frames waiting for refinement; when full the oldest is dropped (newest-frame processing)",
    )
    tracking: bool = _p(
        False,
        "seed each instance with its last refined pose when no newer coarse detection arrives",
        dynamic=True,
    )
    track_timeout: float = _p(
        1.0, "tracks not refreshed for this long (s, image stamps) are dropped"
    )
    publish_tf: bool = _p(True, "publish one /tf frame per accepted instance")
    publish_refined_detections: bool = _p(
        False, "publish vision_msgs/Detection3DArray on 'refined_detections'"
    )
    publish_markers: bool = _p(True, "publish RViz mesh markers on 'markers'")
    publish_overlay: bool = _p(
        True, "publish 'debug/overlay' (drawn only while someone subscribes)"
    )
    diagnostics_period: float = _p(1.0, "seconds between /diagnostics messages")

    def __post_init__(self) -> None:
        if self.detections_type not in DETECTION_TYPES:
            raise ValueError(f"detections_type must be one of {DETECTION_TYPES}")
        if self.input_reliability not in INPUT_RELIABILITY:
            raise ValueError(f"input_reliability must be one of {INPUT_RELIABILITY}")
        small_window = self.window_size is not None and self.window_size < 16
        if self.iterations < 1 or small_window or self.work_queue_size < 1:
            raise ValueError("iterations >= 1, window_size >= 16, work_queue_size >= 1 required")
        if self.sync_slop < 0 or self.max_stamp_age <= 0 or self.track_timeout <= 0:
            raise ValueError("sync_slop >= 0, max_stamp_age > 0 and track_timeout > 0 required")
        bounds = ("image_buffer_mb", "max_image_pixels", "max_detections_per_frame")
        if any(getattr(self, name) < 1 for name in bounds):
            raise ValueError(f"{', '.join(bounds)} >= 1 required")
        unknown = [t for t in self.term_list() if t not in NODE_TERMS]
        if unknown:
            raise ValueError(f"terms must be among {NODE_TERMS} (or ''), got {unknown}")
        self.class_map()  # ValueError for malformed pairs, at start-up rather than per frame
        try:
            self.child_frame("m", "i", "t")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"bad tf_child_frame_format {self.tf_child_frame_format!r}: {err}"
            ) from err

    def child_frame(self, model_id: str, instance_id: str, tf_name: str) -> str:
        return self.tf_child_frame_format.format(
            model_id=model_id, instance_id=instance_id, tf_name=tf_name
        )

    def term_list(self) -> tuple[str, ...]:
        """``terms`` as a tuple; empty: the refiner's defaults."""
        return tuple(t.strip() for t in self.terms.split(",") if t.strip())

    def class_map(self) -> dict[str, str]:
        """class_id_map as a dict (a string, not a string array: ROS parameter files cannot
        hold empty arrays)."""
        pairs = [p.strip() for p in self.class_id_map.split(",") if p.strip()]
        bad = [p for p in pairs if p.count(":") != 1]
        if bad:
            raise ValueError(f"class_id_map entries must be 'class_id:model_id', got {bad}")
        return {k.strip(): v.strip() for k, v in (p.split(":") for p in pairs)}

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

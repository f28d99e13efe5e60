"""The parameters of the ``gcf_refiner`` node: names, defaults, descriptions (one table).

``config/gcf.yaml`` and the README's table carry the same defaults (a test keeps them equal); the
node declares every parameter with its description, so ``ros2 param describe`` documents them.
Parameters whose default is None are declared unset: the refiner then takes the value the weights
file records (``RefinerConfig.resolve``). Every numeric parameter has a closed range (``bounds``, also
declared as the ROS descriptor's range) and the string ones with a fixed set of values their
``choices``; ``NodeParams`` refuses anything else with a ValueError naming the parameter, at start-up
and for every change at run time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gcf_ros.gcf.placement import AUTO, BACKEND_OPTIONS, RENDERER_OPTIONS, Placement
from gcf_ros.gcf.weights_meta import DEFAULT_WINDOW_SIZE, MIN_CONFIDENCE
from gcf_ros.ros.inputs import DETECTION_INPUTS

DETECTION_TYPES = tuple(DETECTION_INPUTS)
# The solver terms a node can run (gcf_ros.gcf.terms; "contour" needs per-detection masks, which
# the detection messages do not carry).
NODE_TERMS = ("field", "mask", "region")
INPUT_RELIABILITY = ("auto", "reliable", "best_effort")  # gcf_ros.ros.qos


SOLVERS = ("gauss_newton", "gradient")
_KINDS = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number"}


def _p(default, description: str, dynamic: bool = False, *, bounds=None, choices=None):
    """A parameter: its default, description, whether it may change at run time, and the closed
    range (lo, hi) of a numeric one or the allowed values of a string one."""
    meta = {"description": description, "dynamic": dynamic, "bounds": bounds, "choices": choices}
    return field(default=default, metadata=meta)


def _check(f: dataclasses.Field, value) -> None:
    """ValueError naming ``f`` unless ``value`` has its type and lies in its bounds/choices."""
    kind = str(f.type).split(" | ")[0]  # "int | None": an int, or unset
    if value is None and f.default is None:
        return
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value).__name__ != kind:
        raise ValueError(f"{f.name} must be {_KINDS[kind]}, got {value!r}")
    lo_hi, choices = f.metadata["bounds"], f.metadata["choices"]
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"{f.name} must be a finite number, got {value!r}")
    if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
        raise ValueError(f"{f.name} must be in [{lo_hi[0]}, {lo_hi[1]}], got {value!r}")
    if choices is not None and value not in choices:
        raise ValueError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")


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
        "cpu",
        "where the refinement runs: cpu (rendering, network and solve on the CPU) or cuda / "
        "cuda:N (the GPU path: rendering, solve and network on that GPU); falls back to cpu with "
        "a warning when that device is missing",
    )
    renderer: str = _p(
        AUTO,
        "how the object is rendered: auto (raycast on cpu, torch on cuda), raycast (open3d ray "
        "casting, CPU only: with a cuda device only the network runs there), torch (hard "
        "rasterization in plain torch, CPU or GPU: all windows of a frame in one batch) or "
        "pytorch3d (PyTorch3D's rasterizer; needs a PyTorch3D build)",
        choices=RENDERER_OPTIONS,
    )
    network_backend: str = _p(
        AUTO,
        "how the network runs: auto (fused on cpu, cuda_graph on cuda), fused (the trained "
        "network with folded batch norms and batched cost volumes, same output, ~1.5x faster on "
        "a CPU), eager (the trained module as is), onnxruntime (optional package, CPU only; "
        "slower here: docs/performance.md), cuda_graph or compile (GPU; batches 1-8 are "
        "captured / compiled at start-up)",
        choices=BACKEND_OPTIONS,
    )
    threads: int = _p(
        1,
        "torch CPU threads (process-wide); 0 = torch's default. 1 is as fast for 64 px windows and avoids OpenMP spin-waiting on busy CPUs (docs/performance.md)",
        bounds=(0, 256),
    )
    iterations: int = _p(
        8, "maximum refinement iterations per frame", dynamic=True, bounds=(1, 1000)
    )
    solver: str = _p(
        "gauss_newton",
        "pose solver: gauss_newton (damped, weighted) or gradient (the paper's steps)",
        choices=SOLVERS,
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
        bounds=(16, 1024),
    )
    min_confidence: float | None = _p(
        None,
        "results with a lower mean predicted weight are REJECTED; unset = the value the weights "
        f"file records ({MIN_CONFIDENCE} for files that record none)",
        dynamic=True,
        bounds=(0.0, 1.0),
    )
    tf_child_frame_format: str = _p(
        "{model_id}_{instance_id}",
        "TF child frame name; fields {model_id}, {instance_id}, {tf_name}",
    )
    detections_type: str = _p(
        "gcf",
        "type on 'detections': gcf (gcf_ros_msgs/CoarseDetectionArray) or vision_msgs (Detection3DArray)",
        choices=DETECTION_TYPES,
    )
    class_id_map: str = _p(
        "", "vision_msgs only: 'class_id:model_id,...'; class ids not listed are used as model ids"
    )
    input_reliability: str = _p(
        "auto",
        f"QoS reliability of image and camera_info, one of {INPUT_RELIABILITY}: auto = as the "
        "publishers offer (reliable when all of them are: no frame lost in transport; else, or "
        "with none yet, best effort), reliable (matches reliable publishers only) or best_effort",
        choices=INPUT_RELIABILITY,
    )
    use_depth: bool = _p(
        False,
        "subscribe to 'depth' (16UC1 or 32FC1, registered to the colour image: same size, frame "
        "and K) and refine each frame with the depth of its stamp; frames without usable depth "
        "are refined RGB-only, their results saying why",
    )
    depth_unit_scale: float = _p(
        0.001,
        "metres per count of 16UC1 depth images (0.001: millimetres, most drivers); 32FC1 depth "
        "is in metres",
        bounds=(1e-06, 1.0),
    )
    sync_slop: float = _p(
        0.01,
        "largest stamp difference (s) between a detection array, or a depth image, and its image; "
        "a frame waits at most this long (s) for its depth",
        bounds=(0.0, 1.0),
    )
    max_stamp_age: float = _p(
        2.0,
        "detection arrays older than the newest image by more than this (s) are dropped as stale, "
        "ahead of the node's clock by more than this refused as future; an array waits at most "
        "this long (s) for its image",
        bounds=(0.001, 3600.0),
    )
    # 5 s: above one CPU refinement of 8 objects (p50 3.6 s stamp -> publish at 30 Hz, one
    # thread: python -m gcf_ros.ros.bench_node --detections 8), so that on a CPU the newest queued
    # frame is not dropped only for waiting behind one refinement; lower it on a fast machine.
    max_latency: float = _p(
        5.0,
        "no frame whose stamp is older than this (s, by the node's clock) when its refinement "
        "would start is refined: it is dropped and counted (stale_dropped), so that the time "
        "from stamp to publish stays bounded under load",
        dynamic=True,
        bounds=(0.001, 3600.0),
    )
    image_buffer_size: int = _p(
        30, "images kept for matching late detection arrays", bounds=(1, 1000)
    )
    image_buffer_mb: int = _p(
        256,
        "memory bound of the image buffer, MB: the oldest images are evicted early (counted) to "
        "stay under it",
        bounds=(1, 1 << 20),
    )
    max_image_pixels: int = _p(
        16777216,
        "larger images (width x height, or more data than 4 bytes a pixel) are refused before "
        "buffering; 16777216 = 4096 x 4096",
        bounds=(1, 1 << 31),
    )
    pending_queue_size: int = _p(10, "detection arrays waiting for their image", bounds=(1, 1000))
    max_detections_per_frame: int = _p(
        32,
        "detections refined per frame at most: the extras (lowest detector scores) are REJECTED "
        "with the reason; tracked instances fill the places left",
        bounds=(1, 10000),
    )
    work_queue_size: int = _p(
        1,
        "frames waiting for refinement; when full the oldest is dropped (newest-frame processing)",
        bounds=(1, 100),
    )
    tracking: bool = _p(
        False,
        "seed each instance with its last refined pose when no newer coarse detection arrives",
        dynamic=True,
    )
    # 1: the fastest, and on LM-O frames (chains of tracked frames) no less accurate than 2-8,
    # which drift further toward the network's biased rest point (docs/performance.md, "Tracking
    # at camera rate (issue 21)").
    tracking_iterations: int = _p(
        1,
        "refinement iterations of an instance seeded from its track (tracking: warm starts need "
        "fewer); fresh detections run 'iterations', both in one batch",
        dynamic=True,
        bounds=(1, 1000),
    )
    track_timeout: float = _p(
        5.0,
        "tracks not refreshed for this long (s, image stamps) are dropped; must exceed one "
        "refinement of a frame (stamp -> refined poses), or tracks expire before they are used",
        bounds=(0.001, 3600.0),
    )
    publish_tf: bool = _p(True, "publish one /tf frame per accepted instance")
    publish_refined_detections: bool = _p(
        False, "publish vision_msgs/Detection3DArray on 'refined_detections'"
    )
    publish_markers: bool = _p(True, "publish RViz mesh markers on 'markers'")
    publish_overlay: bool = _p(
        True, "publish 'debug/overlay' (drawn only while someone subscribes)"
    )
    diagnostics_period: float = _p(
        1.0, "seconds between /diagnostics messages", bounds=(0.05, 3600.0)
    )

    def __post_init__(self) -> None:
        for f in self.fields():  # types, ranges, choices (see the module docstring)
            _check(f, getattr(self, f.name))
        # device, renderer and network_backend together (the machine is checked at start-up,
        # where a missing CUDA device falls back to the CPU: GcfRefinerNode)
        self.placement(self.device, check_device=False)
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

    def placement(self, device: str, check_device: bool = True) -> Placement:
        """Where the refiner runs on ``device`` (the ``device`` parameter, or the CPU it fell
        back to), with the ``renderer`` and ``network_backend`` parameters
        (``Placement.from_options``: ValueError for what cannot run there)."""
        return Placement.from_options(device, self.renderer, self.network_backend, check_device)

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

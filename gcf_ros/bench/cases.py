"""What ``gcf-bench`` measures: refinement runs of GCF and of the soft-rasterizer baselines.

Every case follows one recipe: build the refiner, run each batch once untimed (warm-up: BVHs, mesh
caches, allocator), then ``repeats`` timed runs with a :class:`~gcf_ros.core.phase_timer.PhaseTimer`
attached. From each timed run it keeps

- every iteration's wall time (``per_iteration``: the whole batch's iteration),
- the run's wall time divided by its number of objects (``per_object``),
- per phase, the phase's total over the run divided by the run's iterations; ``other`` is what
  the iterations spent outside the named phases (Python glue).

GCF runs the frame pipeline (:class:`~gcf_ros.pipeline.FramePipeline`) as the ROS node does
(its own crop every iteration). The baselines
run ``SoftRenderRefiner.refine`` as ``gcf-eval`` does (crop once, Adam on the pose), timed from the
crop on; the mask baseline's oracle target masks (a full-image render of every annotated
instance, standing in for a segmentation network) are made before the clock starts.
The peak RSS of each case (:class:`~gcf_ros.bench.timing.PeakRss`) spans construction, warm-up and
the timed runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from gcf_ros.bench.frame import BenchFrame
from gcf_ros.bench.timing import Memory, PeakRss, Stats
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.phase_timer import PhaseTimer
from gcf_ros.core.render.types import Renderer
from gcf_ros.eval.simdepth import simulate_frame_depth
from gcf_ros.gcf.predictor import FieldPredictor
from gcf_ros.gcf.refiner import Refiner, RefinerConfig
from gcf_ros.pipeline.pipeline import FramePipeline
from gcf_ros.pipeline.types import Detections, Observation

# field, region, depth: the solver terms' own time (field: its residuals and Jacobians without the
# network, which runs inside it and is its own phase; depth only with a depth image)
GCF_PHASES = (
    "crop", "render", "occluders", "network", "field", "region", "depth", "solve", "update",
)  # fmt: skip
SOFT_PHASES = ("forward", "backward", "step")
Batch = tuple[Sequence[str], np.ndarray]  # model ids (B,), initial poses (B, 4, 4)


@dataclass(frozen=True)
class CaseTiming:
    """Timings of one case (ms) and its memory.

    Attributes:
        per_iteration: over every timed iteration (of the whole batch).
        per_object: over timed runs: the run's wall time / its number of objects.
        phases: phase name -> stats over timed runs of the phase's time per iteration.
        iterations: median number of iterations of a run.
        memory: RSS before the case and its peak, MB.
    """

    per_iteration: Stats
    per_object: Stats
    phases: dict[str, Stats]
    iterations: float
    memory: Memory


class _Recorder:
    """Accumulates the samples of the timed runs of one case."""

    def __init__(self, phases: Sequence[str]) -> None:
        self.phase_names = tuple(phases)
        self.iterations: list[float] = []
        self.per_object: list[float] = []
        self.runs_iterations: list[int] = []
        self.phases: dict[str, list[float]] = {p: [] for p in (*self.phase_names, "other")}

    def add(self, times: dict[str, list[float]], wall_s: float, n_objects: int) -> None:
        its = times.get("iteration", [])
        self.iterations += its
        self.per_object.append(wall_s / n_objects)
        self.runs_iterations.append(len(its))
        if not its:
            return
        totals = {p: sum(times.get(p, [])) for p in self.phase_names}
        if "field" in totals and "network" in totals:  # the network runs inside the field term
            totals["field"] = max(0.0, totals["field"] - totals["network"])
        for p, total in totals.items():
            self.phases[p].append(total / len(its))
        self.phases["other"].append((sum(its) - sum(totals.values())) / len(its))

    def result(self, memory: Memory) -> CaseTiming:
        return CaseTiming(
            Stats.of_seconds(self.iterations),
            Stats.of_seconds(self.per_object),
            {p: Stats.of_seconds(v) for p, v in self.phases.items()},
            float(np.median(self.runs_iterations)) if self.runs_iterations else 0.0,
            memory,
        )


def _timed_runs(run: Callable[[PhaseTimer | None], None], n_objects: int, repeats: int,
                rec: _Recorder, sync) -> None:  # fmt: skip
    """One warm-up call of ``run(None)``, then ``repeats`` timed calls recorded into ``rec``."""
    run(None)
    for _ in range(repeats):
        timer = PhaseTimer(sync)
        if sync is not None:
            sync()
        t0 = time.perf_counter()
        run(timer)
        if sync is not None:
            sync()
        rec.add(timer.times, time.perf_counter() - t0, n_objects)


def time_gcf(
    frame: BenchFrame,
    registry: ModelRegistry,
    predictor: FieldPredictor,
    settings: dict,
    batches: Sequence[Batch],
    repeats: int,
    sync=None,
    depth_m: np.ndarray | None = None,
    renderer: Renderer | None = None,
) -> CaseTiming:
    """GCF refinement of each batch (all its objects in one frame of the pipeline), with the
    settings the weights record and ``settings`` (RefinerConfig fields) on top; with ``depth_m``
    (H, W) metres registered to the frame, the depth term runs too. ``renderer``: the refiner's
    (None: its default, open3d ray casting; gcf-bench and scripts/gpu_check.py pass their
    placement's, ``gcf_ros.gcf.placement.placement_renderer``)."""
    rec = _Recorder(GCF_PHASES)
    with PeakRss() as probe:
        config = RefinerConfig.resolve(predictor.weights, **settings)
        refiner = Refiner(registry, predictor, config, renderer=renderer)
        pipeline = FramePipeline(refiner)
        for ids, T_init in batches:
            dets = Detections.of_poses(ids, T_init)
            obs = Observation(0.0, "", frame.image_rgb, frame.K, dets, depth_m=depth_m)

            def run(timer: PhaseTimer | None, obs=obs) -> None:
                refiner.timer = timer
                pipeline.process(obs)
                refiner.timer = None

            _timed_runs(run, len(ids), repeats, rec, sync)
    return rec.result(probe.memory)


def simulated_depth(frame: BenchFrame, registry: ModelRegistry, seed: int = 0) -> np.ndarray:
    """(H, W) float32 metres: the frame's annotated objects at their true poses on their table,
    through the Kinect-like sensor model of ``gcf_ros.eval.simdepth`` (fixed seed)."""
    models = [registry.get(m) for m in frame.model_ids]
    rng = np.random.default_rng(seed)
    return simulate_frame_depth(models, frame.T_gt, frame.K, frame.image_rgb.shape[:2], rng)


def oracle_masks(frame: BenchFrame, registry: ModelRegistry) -> np.ndarray:
    """(M, H, W) float32 visible masks of every annotated instance at its ground-truth pose."""
    from gcf_ros.core.visibility import render_scene_masks

    h, w = frame.image_rgb.shape[:2]
    models = [registry.get(m) for m in frame.model_ids]
    return render_scene_masks(models, frame.T_gt, frame.K, w, h).visible.astype(np.float32)


def time_soft(
    frame: BenchFrame,
    registry: ModelRegistry,
    space: str,
    instances: Sequence[int],
    iterations: int,
    repeats: int,
    device: str = "cpu",
    sync=None,
) -> CaseTiming:
    """A soft-rasterizer baseline (``space`` = mask or rgb) on each instance, one at a time."""
    from gcf_ros.baselines.soft_render import SoftRenderConfig, SoftRenderRefiner
    from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

    config = SoftRenderConfig.for_space(space, iterations=iterations)
    masks = oracle_masks(frame, registry) if space == "mask" else None
    rec = _Recorder(SOFT_PHASES)
    with PeakRss() as probe:
        renderer = PyTorch3DRenderer(device=device)
        measured = SoftRenderRefiner(config, renderer)
        warm = SoftRenderRefiner(replace(config, iterations=min(2, iterations)), renderer)
        for i in instances:
            model = registry.get(frame.model_ids[i])
            small = model.simplified(config.face_budget)

            def run(timer: PhaseTimer | None, i=i, model=model, small=small) -> None:
                refiner = warm if timer is None else measured
                refiner.timer = timer
                window = crop_window_for_box(
                    frame.K, frame.T_init[i], model.bbox_corners_obj, config.window_size,
                    config.padding,
                )  # fmt: skip
                if masks is None:
                    target = window.resample(frame.image_rgb).astype(np.float32) / 255.0
                else:
                    target = window.resample(masks[i])
                K_window = window.K_window(frame.K)[None]
                refiner.refine([small], frame.T_init[i][None], K_window, target[None])
                refiner.timer = None

            _timed_runs(run, 1, repeats, rec, sync)
    return rec.result(probe.memory)

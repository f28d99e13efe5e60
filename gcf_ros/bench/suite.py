"""The speed benchmark's plan: which cases ``gcf-bench`` runs, and with how many repeats.

Methods (same frame, same instances, one object per refinement): ``gcf_gauss_newton`` and
``gcf_gradient`` (the learned refiner with its weights' settings and window, at most 8 iterations),
``gcf_rgbd`` (``gcf_gauss_newton`` given the frame's simulated registered depth, so the depth term
runs: ``gcf_ros.eval.simdepth``) and the PyTorch3D soft-rasterizer baselines ``mask`` and ``rgb``
(their tuned defaults: 40 Adam iterations, 48 px window, 500-face meshes). Scaling, GCF with
Gauss-Newton only (the baselines' CPU rasterizer grows with window area x faces, far past any
budget here): objects per frame (one batched ``refine``), window size, mesh faces of the LM-O
driller (obj_000008), and the network's inference backend (``gcf_ros.gcf.inference``; the methods
above run the placement's, by default "fused").

Every GCF case renders, solves and runs its network where ``BenchConfig.placement`` says
(``gcf-bench --device --renderer --network-backend``, :meth:`Placement.from_options`; by default
all on the CPU with ray casting); the baselines run on its network device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from gcf_ros.bench.cases import CaseTiming, simulated_depth, time_gcf, time_soft
from gcf_ros.bench.frame import SCALING_MODEL, BenchFrame, VariantRegistry, mesh_variant
from gcf_ros.bench.timing import sync_for
from gcf_ros.core.models import ModelRegistry
from gcf_ros.gcf.cuda_graph import warm_up
from gcf_ros.gcf.inference import BACKENDS, DEFAULT_BACKEND
from gcf_ros.gcf.placement import Placement, place_predictor, placement_renderer
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Refiner, default_checkpoint

# gcf_rgbd: gcf_gauss_newton with the frame's simulated registered depth (the depth term runs).
METHODS = ("gcf_gauss_newton", "gcf_gradient", "gcf_rgbd", "mask", "rgb")


@dataclass(frozen=True)
class BenchConfig:
    """How much ``gcf-bench`` measures (defaults: the full run; :meth:`quick` for ~2 minutes).

    Attributes:
        placement: where the GCF cases render, solve and run the network, and its backend
            (:mod:`gcf_ros.gcf.placement`); its network device (``device``) is the baselines'.
        repeats: timed runs per instance for GCF and the scaling cases (after one warm-up).
        baseline_repeats: timed runs per instance for the baselines (after one warm-up).
        instances: how many of the frame's evaluated instances (None: all of them).
        baseline_iterations: Adam iterations of the baselines (their tuned default: 40).
        objects: objects per frame for the batch-size scaling.
        windows: window sizes (px) for the window scaling.
        faces: mesh sizes (faces) for the mesh scaling.
        backends: network inference backends for the backend scaling ("onnxruntime" is left out,
            with a note, where the package or the CPU device is missing).
    """

    placement: Placement = field(default_factory=Placement)
    repeats: int = 5
    baseline_repeats: int = 2
    instances: int | None = None
    baseline_iterations: int = 40
    objects: tuple[int, ...] = (1, 4, 16)
    windows: tuple[int, ...] = (64, 128, 192)
    faces: tuple[int, ...] = (2000, 25000, 100000)
    backends: tuple[str, ...] = BACKENDS

    def __post_init__(self) -> None:
        if any(b not in BACKENDS for b in self.backends):
            raise ValueError(f"backends must be among {BACKENDS}, got {self.backends}")
        if min(self.repeats, self.baseline_repeats, self.baseline_iterations) < 1:
            raise ValueError("repeats, baseline_repeats and baseline_iterations must be >= 1")
        if self.instances is not None and self.instances < 1:
            raise ValueError("instances must be >= 1")
        if min((*self.objects, *self.windows, *self.faces), default=1) < 1:
            raise ValueError("objects, windows and faces must be >= 1")

    @property
    def device(self) -> str:
        """``cpu``, ``cuda`` or ``cuda:N``: the network's device, and the baselines'."""
        return self.placement.network_device

    @classmethod
    def quick(cls, **overrides) -> BenchConfig:
        """About two minutes on two CPU cores: two instances, one baseline run each."""
        quick = cls(repeats=3, baseline_repeats=1, instances=2, backends=("eager", DEFAULT_BACKEND))
        return replace(quick, **overrides)


@dataclass(frozen=True)
class ScalingPoint:
    """One scaling case: the value asked for, the value used (faces after decimation or
    subdivision), and its timings."""

    value: int
    actual: int
    timing: CaseTiming


@dataclass
class BenchResults:
    """Everything one speed run measured; ``instances`` are the model ids timed."""

    methods: dict[str, CaseTiming] = field(default_factory=dict)
    scaling: dict[str, list[ScalingPoint]] = field(default_factory=dict)
    instances: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_speed(
    frame: BenchFrame,
    registry: ModelRegistry,
    config: BenchConfig,
    progress: Callable[[str], None] = print,
) -> BenchResults:
    """Run every case of the plan; ``progress`` gets one line per case."""
    sync = sync_for(config.device)
    predictor = NetworkPredictor.from_weights(default_checkpoint(), config.device, "eager")
    place_predictor(predictor, config.placement)
    idx = frame.evaluated[: config.instances]
    out = BenchResults(instances=[frame.model_ids[i] for i in idx])
    singles = [([frame.model_ids[i]], frame.T_init[i : i + 1]) for i in idx]
    # One-time costs outside every case (so each case's memory is its own): mesh loading, the
    # network's first call.
    renderer = placement_renderer(config.placement)
    Refiner(registry, predictor, renderer=renderer).refine_poses(
        frame.image_rgb, frame.K, *singles[0]
    )
    for model_id in frame.model_ids:
        registry.render_model(model_id)
    for solver in ("gauss_newton", "gradient"):
        progress(f"gcf ({solver}) on {len(idx)} instances")
        out.methods[f"gcf_{solver}"] = time_gcf(
            frame, registry, predictor, {"solver": solver}, singles, config.repeats, sync,
            renderer=placement_renderer(config.placement),
        )  # fmt: skip
    progress(f"gcf with simulated depth on {len(idx)} instances")
    depth_m = simulated_depth(frame, registry)
    out.methods["gcf_rgbd"] = time_gcf(
        frame, registry, predictor, {}, singles, config.repeats, sync, depth_m=depth_m,
        renderer=placement_renderer(config.placement),
    )  # fmt: skip
    for space in ("mask", "rgb"):
        progress(f"{space} baseline ({config.baseline_iterations} iterations) on {len(idx)}")
        out.methods[space] = time_soft(
            frame, registry, space, idx, config.baseline_iterations, config.baseline_repeats,
            config.device, sync,
        )  # fmt: skip
    out.scaling = _scaling(frame, registry, predictor, config, sync, progress, out.notes)
    return out


def _scaling(frame, registry, predictor, config, sync, progress, notes) -> dict:
    def gcf(reg, settings, batch, network=predictor) -> CaseTiming:
        """One case under the placement: a renderer of its own (its mesh caches are the case's)."""
        return time_gcf(
            frame, reg, network, settings, [batch], config.repeats, sync,
            renderer=placement_renderer(config.placement),
        )  # fmt: skip

    i = frame.model_ids.index(SCALING_MODEL)
    single = ([SCALING_MODEL], frame.T_init[i : i + 1])
    scaling: dict[str, list[ScalingPoint]] = {
        "objects": [], "window_px": [], "mesh_faces": [], "network_backend": []
    }  # fmt: skip
    for n in config.objects:
        progress(f"scaling: {n} objects per frame")
        point = gcf(registry, {}, frame.batch(n))
        scaling["objects"].append(ScalingPoint(n, n, point))
    for size in config.windows:
        progress(f"scaling: window {size} px")
        point = gcf(registry, {"window_size": size}, single)
        scaling["window_px"].append(ScalingPoint(size, size, point))
    full = registry.get(SCALING_MODEL)
    for faces in config.faces:
        model = mesh_variant(full, faces)
        how = _variant_note(full.num_faces, model.num_faces)
        progress(f"scaling: {SCALING_MODEL} with {model.num_faces} faces ({how})")
        notes.append(f"mesh_faces {faces}: {SCALING_MODEL} {how}, {model.num_faces} faces")
        point = gcf(VariantRegistry(registry, {SCALING_MODEL: model}), {}, single)
        scaling["mesh_faces"].append(ScalingPoint(faces, model.num_faces, point))
    for name in config.backends:
        missing = _backend_missing(name, config.device)
        if missing:
            notes.append(f"network_backend {name}: not run ({missing})")
            continue
        progress(f"scaling: network backend {name}")
        other = NetworkPredictor(predictor.net, config.device, predictor.weights, name)
        if name in ("cuda_graph", "compile"):
            warm_up(other.run, (1,))  # capture / compile before the clock starts
        point = gcf(registry, {}, single, other)
        i = BACKENDS.index(name)  # ScalingPoint values are ints: the report names it
        scaling["network_backend"].append(ScalingPoint(i, i, point))
    return scaling


def _backend_missing(name: str, device: str) -> str:
    """Why backend ``name`` cannot or should not run here ("" when it can)."""
    on_cuda = torch.device(device).type == "cuda"
    if name == "cuda_graph" and not on_cuda:
        return "CUDA only"
    if name == "compile" and not on_cuda:
        return "on a CPU minutes of warm-up for fused's speed (docs/performance.md)"
    if name != "onnxruntime":
        return ""
    if on_cuda:
        return "CPU only"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "package onnxruntime not installed"
    return ""


def _variant_note(full_faces: int, faces: int) -> str:
    if faces == full_faces:
        return "full mesh"
    return "quadric decimation" if faces < full_faces else "midpoint subdivision of the full mesh"

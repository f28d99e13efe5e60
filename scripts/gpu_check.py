"""GPU check of the refinement loop (issue 21): what runs on a GPU machine, how fast, and whether it
agrees with the CPU path. One call, one JSON document.

    python scripts/gpu_check.py --out $OUT/gpu_check.json        # GPU machine: <= 8 min on an H200
    python scripts/gpu_check.py --device cpu --quick --out out/gpu_check_cpu.json  # ~1 min, 2 cores

Without open3d on the GPU machine: write the models here first (one file, ~6 MB: the packaged
registry and LM-O's) and the LM-O frames that the ``lmo`` section reads (scripts/lmo_subset.py):

    python scripts/gpu_check.py --write-models-snapshot shared/models_snapshot.npz
    python scripts/lmo_subset.py --out shared/lmo_51_100 --frames 51-100
    python scripts/gpu_check.py --models-snapshot shared/models_snapshot.npz \
        --lmo shared/lmo_51_100 --out $OUT/gpu_check.json                    # GPU machine

Time budget: ``--budget-s`` (default 420 s) bounds the whole run; the sections run in the order
below and the last one (torch.compile) takes what is left, bucket by bucket, stopping early when
the next compilation might not fit. The JSON is rewritten after every section, so a run killed at
the device's time limit still leaves what it measured. On the H200 the expected split is: start-up
and imports ~20 s, network ~30 s, renderer ~20 s, solver ~5 s, cases ~90 s, parity ~30 s, LM-O
frames 51-100 ~90 s, compile the rest (about 2 minutes: ~20-40 s per bucket).

Sections (keys of the JSON; each runs in its own try: a package that does not import or an error
is recorded under that key as {"skipped": ...} or {"error": ...}, and the other sections still run.
The GPU machine may lack open3d and PyTorch3D: the GPU placement renders with the torch
rasterizer (gcf_ros.core.render.torch_raster), which needs neither; the CPU reference is then the
torch rasterizer on the CPU, and with ``--models-snapshot`` the models come from a registry
snapshot, so nothing needs open3d except ray casting):

- ``environment``: device name, torch / CUDA / Python versions, which optional packages import.
- ``network``: the shipped networks alone (gcf_lmo.pt, S = 128; gcf_lmo_s64.pt, S = 64) for
  1 / 16 / 64 windows: eager vs fused (gcf_ros.gcf.inference.FusedGcfNet) vs a CUDA graph of the
  fused net (gcf_ros.gcf.cuda_graph.CudaGraphNet): ms per call (median), capture time,
  max |field - eager field|. Needs torch only.
- ``renderer``: open3d ray casting (where it imports), the torch rasterizer (CPU and device) and
  PyTorch3D (where it imports; CUDA: naive and binned rasterization; the CPU rasterizer only with
  --quick's decimated meshes) on the packaged LM-O bench frame, 1 and 16 windows: ms per call and
  per window; mask IoU and depth difference against the first of them (``reference``).
- ``solver``: the field term's rows (point_residuals) and solve_terms for 1 / 16 windows, on the
  CPU and on the device: ms, max |xi difference|.
- ``cases``: gcf-bench's GPU cases (gcf_ros.bench.cases.time_gcf: one batched refinement of the
  bench frame's objects, the objects-per-frame scaling) for 1 and 16 objects under each placement
  (gcf_ros.gcf.placement), ms per iteration (median, p90), per object, and per phase; and the
  PyTorch3D soft-rasterizer baselines (mask, rgb) on the device.
- ``parity``: the same inputs (bench frame, 16 objects) refined by the CPU reference (ray casting,
  or the torch rasterizer without open3d; solve and network on the CPU) and by (a) the same
  renderer with the solve and the network on the device, (b) the full GPU placements (torch
  rasterizer; PyTorch3D where it imports): rotation (deg) and translation (mm) differences of the
  poses after 1 iteration and after all of them.
- ``lmo``: LM-O frames 51-100 at medium noise, seed 0 (gcf-eval's protocol: gcf_ros.eval.harness)
  with the GPU placement and the CPU reference placement: accuracy, ms per iteration, and the
  per-instance pose differences between the two.
- ``network_compile``: torch.compile (mode reduce-overhead) of the shipped networks for 1 / 16 / 64
  windows: compile + warm-up s, ms per call, max |field - eager field|.

Placements (gcf_ros.gcf.placement.Placement; ``_Context.placements``): ``raycast`` = open3d on the
CPU, solve on the CPU, network on the device (``gcf-bench --device cuda --renderer raycast
--network-backend fused``); ``gpu`` = the torch rasterizer, solve and network (CUDA graph) on the
device (``--device cuda``, the node's ``device:=cuda``); ``gpu_eager`` = the same with the eager
network; ``gpu_pytorch3d`` = PyTorch3D's binned rasterizer instead of the torch one;
``gpu_render_cpu_solve`` = the torch rasterizer on the device, solve on the CPU.

With ``--device cpu`` every "device" is the CPU (the CUDA graph path runs without capture, compile
with torch.compile's eager backend): the run checks the machinery, not speed. ``--quick``: tiny
sizes (2 windows, 2 iterations, 500-face meshes, LM-O frame 51 only) for the test
(test/tools/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a plain copy of the repository (no install)
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

OPTIONAL = ("numpy", "cv2", "scipy", "yaml", "PIL", "open3d", "pytorch3d", "triton")
# Names of the registries in a --models-snapshot file: the packaged models.yaml, LM-O's models/.
# The same ids differ there (tf_name, source file, vertices by float32 rounding of the two PLY
# files), so each keeps its own models; the snapshot stores arrays that are equal once.
SNAPSHOT_DEFAULT, SNAPSHOT_LMO = "default", "lmo"


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (full on a GPU, or --quick).

    Attributes:
        networks: shipped weights timed alone; checkpoint: the refiner's.
        network_batches, compile_batches: windows per call, eager / CUDA graph and compile.
        render_windows, solver_batches, case_objects: windows / objects per frame.
        placements: the placements of the cases (all: ``_Context.placements``).
        repeats: timed runs per case (network_repeats: per network call); parity_objects: objects
            of the parity frame.
        iterations: refinement iterations (None: the weights' own).
        frames, max_instances: the LM-O frames (gcf-eval --frames) and a cap on instances.
        face_budget: decimate every render model to this (the CPU rasterizer is slow).
        baseline_iterations, baseline_instances: the soft-rasterizer baselines' cases.
    """

    networks: tuple[str, ...] = ("gcf_lmo.pt", "gcf_lmo_s64.pt")
    checkpoint: str = "gcf_lmo.pt"
    network_batches: tuple[int, ...] = (1, 16, 64)
    compile_batches: tuple[int, ...] = (1, 16, 64)
    render_windows: tuple[int, ...] = (1, 16)
    solver_batches: tuple[int, ...] = (1, 16)
    case_objects: tuple[int, ...] = (1, 16)
    placements: tuple[str, ...] = (
        "raycast", "gpu", "gpu_eager", "gpu_pytorch3d", "gpu_render_cpu_solve",
    )  # fmt: skip
    repeats: int = 5
    network_repeats: int = 30
    parity_objects: int = 16
    iterations: int | None = None
    frames: str = "51-100"
    max_instances: int | None = None
    face_budget: int | None = None
    baseline_iterations: int = 40
    baseline_instances: int = 2

    @classmethod
    def quick(cls) -> Plan:
        """About a minute on two CPU cores: the S = 64 network, 1-2 windows, 2 iterations."""
        return cls(
            networks=("gcf_lmo_s64.pt",), checkpoint="gcf_lmo_s64.pt", network_batches=(2,),
            compile_batches=(1,), render_windows=(2,), solver_batches=(2,), case_objects=(2,),
            placements=("raycast", "gpu", "gpu_pytorch3d"), repeats=1, network_repeats=3,
            parity_objects=2, iterations=2,
            frames="51-51", max_instances=2, face_budget=500, baseline_iterations=2,
            baseline_instances=1,
        )  # fmt: skip


class Budget:
    """Seconds left of the run's budget."""

    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def _finite(x):
    """JSON has no NaN / inf: None instead, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _sync(device: torch.device) -> Callable[[], None] | None:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def _has(package: str) -> bool:
    """Whether ``package`` imports here (the GPU machine may lack open3d and PyTorch3D)."""
    try:
        importlib.import_module(package)
    except Exception:  # an ABI mismatch raises OSError / RuntimeError, not only ImportError
        return False
    return True


def _attempt(fn: Callable[[], dict]) -> dict:
    """fn(), or what went wrong (one failing item does not end its section)."""
    try:
        return fn()
    except ImportError as err:
        return {"skipped": f"missing package: {err}"}
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"[:500],
                "traceback": traceback.format_exc().splitlines()[-6:]}  # fmt: skip


def _time_ms(fn: Callable[[], object], sync, repeats: int, warm: int = 2) -> dict:
    """Median and minimum ms of ``repeats`` calls after ``warm`` untimed ones."""
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(1e3 * (time.perf_counter() - t0))
    samples.sort()
    return {"median_ms": samples[len(samples) // 2], "min_ms": samples[0], "n": len(samples)}


# ---------------------------------------------------------------------------------------- sections


def environment(device: torch.device) -> dict:
    packages = {}
    for name in OPTIONAL:
        try:
            mod = importlib.import_module(name)
            packages[name] = getattr(mod, "__version__", "present")
        except Exception as err:  # ImportError, or a broken binary
            packages[name] = f"missing: {type(err).__name__}: {err}"[:200]
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else _cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": packages,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load_net(name: str, device: torch.device):
    from gcf_ros.gcf.checkpoints import find_checkpoint
    from gcf_ros.gcf.network import load_gcf_weights

    net, meta = load_gcf_weights(find_checkpoint(name), device)
    return net.eval(), int(meta.get("window_size") or 64)


def _net_inputs(batch: int, size: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    render = torch.rand(batch, 10, size, size, generator=g)
    return image.to(device), render.to(device)


def network(device: torch.device, plan: Plan, budget: Budget) -> dict:
    """Eager vs CUDA graph, per shipped network and batch."""
    from gcf_ros.gcf.cuda_graph import CudaGraphNet, warm_up
    from gcf_ros.gcf.inference import FusedGcfNet

    sync, out = _sync(device), {}
    for name in plan.networks:
        net, S = _load_net(name, device)
        fused = FusedGcfNet(net).to(device)  # the default backend; the graphs capture it
        graphed = CudaGraphNet(fused, S, plan.network_batches)  # captures on CUDA only
        rows = {"window_size": S, "capture": graphed.capture, "batches": {}}
        for b in plan.network_batches:
            if budget.left() < 30:
                rows["batches"][str(b)] = {"skipped": "time budget"}
                continue
            image, render = _net_inputs(b, S, device)
            n = plan.network_repeats

            def eager(i=image, r=render, f=net, n=n) -> dict:
                with torch.inference_mode():
                    return _time_ms(lambda: f(i, r), sync, n)

            def graph(i=image, r=render, f=graphed, b=b, n=n, net=net) -> dict:
                with torch.inference_mode():
                    capture_s = warm_up(f, (b,), calls=1)[b]
                    timing = _time_ms(lambda: f(i, r), sync, n)
                    diff = (f(i, r).field - net(i, r).field).abs().max()
                return {**timing, "capture_s": capture_s, "max_field_diff_px": float(diff)}

            def fused_run(i=image, r=render, f=fused, n=n, net=net) -> dict:
                with torch.inference_mode():
                    timing = _time_ms(lambda: f(i, r), sync, n)
                    diff = (f(i, r).field - net(i, r).field).abs().max()
                return {**timing, "max_field_diff_px": float(diff)}

            row = {"eager": _attempt(eager), "fused": _attempt(fused_run),
                   "cuda_graph": _attempt(graph)}  # fmt: skip
            if "median_ms" in row["eager"] and "median_ms" in row["cuda_graph"]:
                row["speedup"] = row["eager"]["median_ms"] / row["cuda_graph"]["median_ms"]
            rows["batches"][str(b)] = row
        out[name] = rows
    return out


def network_compile(device: torch.device, plan: Plan, budget: Budget) -> dict:
    """torch.compile per shipped network and batch, while the budget lasts (last section)."""
    from gcf_ros.gcf.cuda_graph import CompiledNet, warm_up
    from gcf_ros.gcf.inference import FusedGcfNet

    sync, out = _sync(device), {}
    backend = "inductor" if device.type == "cuda" else "eager"  # CPU: the machinery only
    per_bucket_s = 60 if device.type == "cuda" else 5
    for name in plan.networks:
        net, S = _load_net(name, device)
        compiled = CompiledNet(
            FusedGcfNet(net).to(device), S, plan.compile_batches, compile_backend=backend
        )
        rows = {"window_size": S, "mode": compiled.mode, "compile_backend": backend, "batches": {}}
        for b in plan.compile_batches:
            if budget.left() < per_bucket_s:
                rows["batches"][str(b)] = {"skipped": f"time budget ({budget.left():.0f} s left)"}
                continue
            image, render = _net_inputs(b, S, device)

            def run(i=image, r=render, f=compiled, b=b, net=net) -> dict:
                with torch.inference_mode():
                    warm_s = warm_up(f, (b,), calls=3)[b]
                    timing = _time_ms(lambda: f(i, r), sync, plan.network_repeats)
                    diff = (f(i, r).field - net(i, r).field).abs().max()
                return {**timing, "warm_up_s": warm_s, "max_field_diff_px": float(diff)}

            rows["batches"][str(b)] = _attempt(run)
        out[name] = rows
    return out


class _Context:
    """What the refinement sections share: the registry (decimated with --quick), the bench
    frame, the predictors per (device, backend), the placements."""

    def __init__(self, device: torch.device, plan: Plan, snapshot: Path | None = None) -> None:
        from gcf_ros.bench.frame import VariantRegistry, load_bench_frame
        from gcf_ros.core.models import ModelRegistry
        from gcf_ros.resources import default_models_yaml

        self.device, self.plan, self.snapshot = device, plan, snapshot
        self.frame = load_bench_frame()
        base = _snapshot_registry(snapshot, SNAPSHOT_DEFAULT)
        if base is None:
            base = ModelRegistry.from_yaml(default_models_yaml())
        self.registry = base if plan.face_budget is None else _decimated(base, plan.face_budget)
        self._predictors: dict = {}
        self.VariantRegistry = VariantRegistry

    def predictor(self, device: str, backend: str):
        from gcf_ros.gcf.checkpoints import find_checkpoint
        from gcf_ros.gcf.placement import Placement, place_predictor
        from gcf_ros.gcf.predictor import NetworkPredictor

        key = (device, backend)
        if key not in self._predictors:
            path = find_checkpoint(self.plan.checkpoint)
            p = NetworkPredictor.from_weights(path, device, "eager")  # placed just below
            placement = Placement(network_device=device, network_backend=backend)
            self._predictors[key] = place_predictor(p, placement)
        return self._predictors[key]

    def placements(self) -> dict:
        """The placements measured, those whose renderer's package is missing left out:
        ``raycast`` (open3d on the CPU, the network on the device), ``gpu`` (the torch
        rasterizer, the solve and the network's CUDA graph on the device), ``gpu_eager`` (the
        same, eager network), ``gpu_pytorch3d`` (PyTorch3D's binned rasterizer instead),
        ``gpu_render_cpu_solve`` (the torch rasterizer on the device, the solve on the CPU)."""
        from gcf_ros.gcf.placement import Placement

        dev = str(self.device)
        graph = "cuda_graph" if self.device.type == "cuda" else "eager"
        out = {}
        if _has("open3d"):
            out["raycast"] = Placement(network_device=dev)
        out["gpu"] = Placement.gpu(dev, graph)
        out["gpu_eager"] = Placement.gpu(dev, "eager")
        if _has("pytorch3d"):
            out["gpu_pytorch3d"] = Placement.gpu(dev, graph, renderer="pytorch3d")
        out["gpu_render_cpu_solve"] = Placement("torch", dev, "cpu", dev, graph)
        return out

    def reference(self) -> tuple[str, object]:
        """The CPU reference placement: open3d ray casting where open3d imports, else the torch
        rasterizer on the CPU (the same code as the device's, so parity isolates the device)."""
        from gcf_ros.gcf.placement import Placement

        if _has("open3d"):
            return "cpu_raycast", Placement()
        return "cpu_torch", Placement(renderer="torch")

    def refiner(self, placement, registry=None, overrides=None):
        from gcf_ros.gcf.placement import build_refiner

        predictor = self.predictor(placement.network_device, placement.network_backend)
        overrides = dict(overrides or {})
        if self.plan.iterations is not None:
            overrides.setdefault("iterations", self.plan.iterations)
        return build_refiner(registry or self.registry, placement, None, overrides, predictor)


def _decimated(base, faces: int):
    """A registry whose render models are decimated to ``faces`` on first use."""
    from gcf_ros.bench.frame import VariantRegistry

    class Decimated(VariantRegistry):
        def render_model(self, model_id: str):
            if model_id not in self._variants:
                self._variants[model_id] = base.render_model(model_id).simplified(faces)
            return self._variants[model_id]

    return Decimated(base, {})


def _snapshot_registry(path: Path | None, name: str):
    """Registry ``name`` of the snapshot file ``path``; None when no file is given."""
    from gcf_ros.core.models import ModelRegistry

    return None if path is None else ModelRegistry.load_snapshot(path, name)


def write_models_snapshot(path: Path, lmo_root: Path | None) -> dict:
    """Write the packaged registry and, when found, LM-O's (``load_registry(None, dataset)``) to
    one snapshot at ``path`` (needs open3d and the meshes); what was written and how the
    registries compare where their ids overlap."""
    from gcf_ros.core.bop import BopDataset
    from gcf_ros.core.model_snapshot import write_snapshot
    from gcf_ros.core.models import ModelRegistry
    from gcf_ros.eval.models_input import load_registry
    from gcf_ros.resources import default_models_yaml

    registries = {SNAPSHOT_DEFAULT: ModelRegistry.from_yaml(default_models_yaml())}
    if lmo_root is not None:
        registries[SNAPSHOT_LMO] = load_registry(None, BopDataset(lmo_root))
    write_snapshot(path, registries)
    out: dict = {"snapshot": str(path), "bytes": path.stat().st_size, "lmo_root": str(lmo_root),
                 "registries": {k: list(r.ids) for k, r in registries.items()}}  # fmt: skip
    if SNAPSHOT_LMO in registries:
        out["overlap"] = _compare_registries(*registries.values())
    return out


def _compare_registries(a, b) -> dict:
    """Per id of both: which ObjectModel fields differ, and the largest vertex difference (mm)."""
    import numpy as np

    fields = ("verts_obj", "faces", "vert_colors", "vert_normals_obj", "diameter", "symmetry",
              "tf_name", "up_axis", "color_source")  # fmt: skip
    out = {}
    for model_id in sorted(set(a.ids) & set(b.ids)):
        ma, mb = a.get(model_id), b.get(model_id)
        differ = [f for f in fields if not _same(getattr(ma, f), getattr(mb, f))]
        same_shape = ma.verts_obj.shape == mb.verts_obj.shape
        dv = float(1e3 * np.abs(ma.verts_obj - mb.verts_obj).max()) if same_shape else None
        out[model_id] = {"fields_differ": differ, "max_vertex_diff_mm": dv}
    return out


def _same(x, y) -> bool:
    import numpy as np

    if isinstance(x, np.ndarray):
        return x.shape == y.shape and bool(np.array_equal(x, y))
    return x == y


def renderer(ctx: _Context) -> dict:
    """Per-window render times and agreement with the first renderer (open3d ray casting where
    open3d imports, else the torch rasterizer on the CPU)."""
    import numpy as np

    from gcf_ros.core.camera import crop_window_for_box
    from gcf_ros.core.render.torch_raster import TorchRasterizer

    frame, dev, S = ctx.frame, ctx.device, ctx.predictor(str(ctx.device), "eager").window_size
    renderers: dict = {}
    if _has("open3d"):
        from gcf_ros.core.render.raycast import RaycastRenderer

        renderers["open3d_raycast_cpu"] = RaycastRenderer()
    renderers["torch_cpu"] = TorchRasterizer("cpu")
    if dev.type == "cuda":
        renderers["torch_cuda"] = TorchRasterizer(dev)
    if _has("pytorch3d"):
        from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

        if dev.type == "cuda":
            renderers["pytorch3d_cuda_naive"] = PyTorch3DRenderer(device=dev, bin_size=0)
            renderers["pytorch3d_cuda_binned"] = PyTorch3DRenderer(device=dev, bin_size=None)
        else:  # decimated meshes only (--quick): the CPU rasterizer tests every face at every pixel
            renderers["pytorch3d_cpu_naive"] = PyTorch3DRenderer(device="cpu", bin_size=0)
    out: dict = {"window_size": S, "faces_budget": ctx.plan.face_budget,
                 "reference": next(iter(renderers)), "windows": {}}  # fmt: skip
    for n in ctx.plan.render_windows:
        ids, T = frame.batch(n)
        models = [ctx.registry.render_model(m) for m in ids]
        K_win = torch.from_numpy(np.stack([
            crop_window_for_box(frame.K, T[b], models[b].bbox_corners_obj, S, 1.3).K_window(frame.K)
            for b in range(n)
        ]))  # fmt: skip
        T_t = torch.from_numpy(T)
        rows, ref = {}, None
        for name, r in renderers.items():

            def measure(name=name, r=r, models=models, T=T_t, K=K_win, n=n) -> dict:
                sync = _sync(dev) if "cuda" in name else None
                timing = _time_ms(lambda: r.render(models, T, K, S), sync, ctx.plan.repeats)
                o = r.render(models, T, K, S).to("cpu")
                row = {**timing, "per_window_ms": timing["median_ms"] / n, "output": o}
                return row

            rows[name] = _attempt(measure)
            o = rows[name].pop("output", None)
            if ref is None:
                ref = o
            elif o is not None:
                inter = (o.mask & ref.mask).flatten(1).sum(1).double()
                union = (o.mask | ref.mask).flatten(1).sum(1).clamp_min(1).double()
                dz = (o.depth - ref.depth)[o.mask & ref.mask].abs()
                rows[name]["mask_iou_vs_reference_min"] = float((inter / union).min())
                rows[name]["depth_diff_mm_median"] = (
                    float(1e3 * dz.median()) if dz.numel() else None
                )
        out["windows"][str(n)] = rows
    return out


def solver(device: torch.device, plan: Plan) -> dict:
    """point_residuals + solve_terms on synthetic field rows: CPU vs the device."""
    from gcf_ros.gcf.solver import TermWeight, solve_terms
    from gcf_ros.gcf.terms.base import point_residuals

    out = {}
    for B in plan.solver_batches:
        g = torch.Generator().manual_seed(B)
        N = 4000  # rows per window: ~25 % of a 128 px window
        X = 0.05 * (torch.rand(B, N, 3, generator=g, dtype=torch.float64) - 0.5)
        T = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
        T[:, 2, 3] = 0.6
        K = torch.tensor([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]], dtype=torch.float64)
        K = K.repeat(B, 1, 1)
        r = 2.0 * torch.randn(B, N, 2, generator=g, dtype=torch.float64)
        w = torch.rand(B, N, generator=g, dtype=torch.float64)
        weight = TermWeight(1.0, 0.1, 5.0)
        row, xis = {}, {}
        for d in dict.fromkeys(("cpu", str(device))):
            dd = torch.device(d)
            args = [x.to(dd) for x in (K, T, X, r, w)]

            def step(args=args, weight=weight):
                return solve_terms([(point_residuals(*args), weight)])

            row[d] = _time_ms(step, _sync(dd), 10 * plan.repeats)
            xis[d] = step().cpu()
        row["max_xi_diff_vs_cpu"] = float(max((x - xis["cpu"]).abs().max() for x in xis.values()))
        out[str(B)] = {"rows_per_window": N, **row}
    return out


def cases(ctx: _Context, budget: Budget) -> dict:
    """gcf-bench's time_gcf per placement and objects per frame; the soft baselines."""
    from gcf_ros.bench.cases import time_gcf, time_soft
    from gcf_ros.gcf.placement import placement_renderer

    frame, plan, sync = ctx.frame, ctx.plan, _sync(ctx.device)
    settings = {} if plan.iterations is None else {"iterations": plan.iterations}
    out: dict = {}
    for name, placement in ctx.placements().items():
        if name not in plan.placements:
            continue
        rows = {"placement": placement.to_dict()}
        predictor = ctx.predictor(placement.network_device, placement.network_backend)
        for n in plan.case_objects:
            if budget.left() < 60:
                rows[str(n)] = {"skipped": "time budget"}
                continue

            def case(placement=placement, predictor=predictor, n=n) -> dict:
                timing = time_gcf(
                    frame, ctx.registry, predictor, settings, [frame.batch(n)], plan.repeats,
                    sync, renderer=placement_renderer(placement),
                )  # fmt: skip
                return {
                    "per_iteration_ms": timing.per_iteration.to_dict(),
                    "per_object_ms": timing.per_object.to_dict(),
                    "iterations": timing.iterations,
                    "phases_ms": {k: v.median for k, v in timing.phases.items()},
                }

            rows[str(n)] = _attempt(case)
        out[name] = rows
    idx = frame.evaluated[: plan.baseline_instances]
    for space in ("mask", "rgb"):
        if budget.left() < 60:
            out[f"baseline_{space}"] = {"skipped": "time budget"}
            continue

        def soft(space=space) -> dict:
            timing = time_soft(frame, ctx.registry, space, idx, plan.baseline_iterations, 1,
                               str(ctx.device), sync)  # fmt: skip
            return {
                "device": str(ctx.device), "instances": len(idx),
                "iterations": plan.baseline_iterations,
                "per_iteration_ms": timing.per_iteration.to_dict(),
                "per_object_ms": timing.per_object.to_dict(),
            }  # fmt: skip

        out[f"baseline_{space}"] = _attempt(soft)
    return out


def _pose_diff(A, B) -> dict:
    """Rotation (deg) and translation (mm) differences of pose stacks (n, 4, 4)."""
    import numpy as np

    A, B = np.asarray(A), np.asarray(B)
    # |R_a - R_b|_F = 2 sqrt(2) sin(angle / 2): exact near 0, where arccos of the trace is not
    chord = np.linalg.norm(A[:, :3, :3] - B[:, :3, :3], axis=(1, 2)) / (2.0 * np.sqrt(2.0))
    rot = np.degrees(2.0 * np.arcsin(np.clip(chord, 0.0, 1.0)))
    trans = 1e3 * np.linalg.norm(A[:, :3, 3] - B[:, :3, 3], axis=1)
    return {
        "n": len(A),
        "rot_deg_max": float(rot.max()), "rot_deg_median": float(np.median(rot)),
        "trans_mm_max": float(trans.max()), "trans_mm_median": float(np.median(trans)),
    }  # fmt: skip


def parity(ctx: _Context) -> dict:
    """Same inputs, CPU reference vs device placements, after 1 and all iterations."""
    import numpy as np

    from gcf_ros.gcf.placement import Placement

    frame, dev = ctx.frame, str(ctx.device)
    ids, T0 = frame.batch(ctx.plan.parity_objects)
    ref_name, ref = ctx.reference()
    references = {"cpu": ref}
    placements = ctx.placements()
    others = {
        "same_renderer_device_solve_and_network": Placement(
            ref.renderer, solve_device=dev, network_device=dev),
        **{k: placements[k] for k in ("gpu", "gpu_pytorch3d") if k in placements},
    }  # fmt: skip
    out: dict = {"objects": len(ids), "reference": ref_name}
    full = ctx.plan.iterations or ctx.refiner(references["cpu"]).config.iterations
    for its in dict.fromkeys((1, full)):
        poses = {}
        for name, placement in {**references, **others}.items():
            refiner = ctx.refiner(placement, overrides={"iterations": its})
            results = refiner.refine_poses(frame.image_rgb, frame.K, ids, T0)
            poses[name] = (np.stack([r.T_cam_obj for r in results]), [r.status for r in results])
        ref_T, ref_status = poses["cpu"]
        out[f"iterations_{its}"] = {
            name: {**_pose_diff(ref_T, poses[name][0]),
                   "same_status": int(sum(a == b for a, b in zip(ref_status, poses[name][1],
                                                                  strict=True)))}
            for name in others
        }  # fmt: skip
    return out


def _lmo_root(arg: Path | None) -> Path | None:
    candidates = [arg, os.environ.get("GCF_LMO_ROOT"), ROOT.parent / "shared/data/lmo",
                  ROOT / "shared/data/lmo"]  # fmt: skip
    for c in candidates:
        if c and (Path(c) / "camera.json").is_file():
            return Path(c)
    return None


def lmo(ctx: _Context, root: Path | None, budget: Budget) -> dict:
    """gcf-eval's protocol on LM-O frames ``plan.frames`` for two placements."""
    import numpy as np

    from gcf_ros.core.bop import BopDataset
    from gcf_ros.eval.cli import frame_range
    from gcf_ros.eval.harness import EvalConfig, evaluate, results_dict, select_instances
    from gcf_ros.eval.methods import MethodOutput
    from gcf_ros.eval.models_input import check_models_cover, load_registry

    if root is None:
        return {"skipped": "LM-O not found (--lmo, GCF_LMO_ROOT, ../shared/data/lmo)"}
    dataset = BopDataset(root)
    base = _snapshot_registry(ctx.snapshot, SNAPSHOT_LMO)
    if base is None:
        base = load_registry(None, dataset)
    source = f"{ctx.snapshot} ({SNAPSHOT_LMO})" if ctx.snapshot else str(root / "models")
    check_models_cover(dataset, base, source)
    registry = base if ctx.plan.face_budget is None else _decimated(base, ctx.plan.face_budget)
    config = EvalConfig(root, noise="medium", seed=0)
    selected = frame_range(select_instances(dataset, base, config), dataset, ctx.plan.frames)
    selected = selected[: ctx.plan.max_instances]
    sync = _sync(ctx.device)

    class Placed:
        uses_depth = False

        def __init__(self, refiner, label: str) -> None:
            self.refiner, self.label, self.poses = refiner, label, []

        def refine(self, frame, T_init) -> MethodOutput:
            t0 = time.perf_counter()
            ids = [m.model_id for m in frame.models]
            results = self.refiner.refine_poses(frame.image_rgb, frame.K, ids, T_init)
            if sync:
                sync()
            T = np.stack([r.T_cam_obj for r in results])
            self.poses.append(T)
            its = np.array([max(r.iterations, 1) for r in results])
            return MethodOutput(T, its, time.perf_counter() - t0)

    out: dict = {"frames": ctx.plan.frames, "noise": "medium", "seed": 0,
                 "n_instances": len(selected), "models": source}  # fmt: skip
    poses = {}
    ref_name, ref = ctx.reference()
    runs = {"gpu": ctx.placements()["gpu"], ref_name: ref}  # the device's first: it is the news
    for name, placement in runs.items():
        if budget.left() < 90:
            out[name] = {"skipped": "time budget"}
            continue

        def run(name=name, placement=placement) -> dict:
            method = Placed(ctx.refiner(placement, registry), name)
            t0 = time.perf_counter()
            doc = results_dict(evaluate(selected, registry, method), {})
            poses[name] = np.concatenate(method.poses) if method.poses else None
            return {
                "placement": placement.to_dict(), "wall_s": time.perf_counter() - t0,
                "refined": doc["refined"], "initial": doc["initial"], "time": doc["time"],
            }  # fmt: skip

        out[name] = _attempt(run)  # one placement's failure leaves the other's result
    if all(poses.get(k) is not None for k in (ref_name, "gpu")):
        out["pose_diff_reference_vs_gpu"] = _pose_diff(poses[ref_name], poses["gpu"])
        out["reference"] = ref_name
    return out


# -------------------------------------------------------------------------------------------- main


def _run(doc: dict, key: str, fn: Callable[[], dict], out: Path | None) -> None:
    """One section: its result, or why it did not run; the JSON is rewritten after it."""
    t0 = time.perf_counter()
    print(f"# {key} ...", flush=True)
    try:
        doc[key] = fn()
    except ImportError as err:
        doc[key] = {"skipped": f"missing package: {err}"}
    except Exception as err:
        doc[key] = {"error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc().splitlines()[-6:]}  # fmt: skip
    if isinstance(doc[key], dict):
        doc[key]["section_s"] = time.perf_counter() - t0
    print(f"# {key}: {time.perf_counter() - t0:.1f} s", flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_finite(doc), indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda (default when visible) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the CPU test)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    p.add_argument("--budget-s", type=float, default=420.0, help="time budget of the run")
    p.add_argument("--lmo", type=Path, default=None, help="LM-O BOP folder")
    p.add_argument("--skip", nargs="*", default=(), help="sections to leave out")
    p.add_argument("--face-budget", type=int, default=None,
                   help="decimate render models to this many faces (0: full meshes; default: "
                        "the plan's, 500 with --quick; decimation needs open3d)")  # fmt: skip
    p.add_argument(
        "--models-snapshot",
        type=Path,
        default=None,
        help="serve the models from this snapshot (no open3d needed to load them)",
    )
    p.add_argument(
        "--write-models-snapshot",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the packaged and LM-O registries to FILE and exit (needs open3d)",
    )
    args = p.parse_args(argv)
    if args.write_models_snapshot is not None:
        info = write_models_snapshot(args.write_models_snapshot, _lmo_root(args.lmo))
        print(json.dumps(info, indent=1))
        return 0
    budget = Budget(args.budget_s)
    requested = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    notes = []
    if device.type == "cuda" and not torch.cuda.is_available():
        notes.append("--device cuda requested but no CUDA device is visible: ran on the CPU")
        device = torch.device("cpu")
    plan = Plan.quick() if args.quick else Plan()
    if args.face_budget is not None:
        plan = dataclasses.replace(plan, face_budget=args.face_budget or None)
    snapshot = args.models_snapshot
    if snapshot is not None and not snapshot.is_file():
        notes.append(f"--models-snapshot {snapshot}: no such file; models loaded from meshes")
        snapshot = None
    doc: dict = {"script": "scripts/gpu_check.py", "quick": args.quick, "notes": notes,
                 "budget_s": args.budget_s, "plan": plan.__dict__,
                 "models_snapshot": None if snapshot is None else str(snapshot)}  # fmt: skip
    ctx_box: list = []

    def ctx() -> _Context:
        if not ctx_box:
            ctx_box.append(_Context(device, plan, snapshot))
        return ctx_box[0]

    sections = {
        "environment": lambda: environment(device),
        "network": lambda: network(device, plan, budget),
        "renderer": lambda: renderer(ctx()),
        "solver": lambda: solver(device, plan),
        "cases": lambda: cases(ctx(), budget),
        "parity": lambda: parity(ctx()),
        "lmo": lambda: lmo(ctx(), _lmo_root(args.lmo), budget),
        "network_compile": lambda: network_compile(device, plan, budget),
    }
    for key, fn in sections.items():
        if key in args.skip:
            doc[key] = {"skipped": "--skip"}
            continue
        _run(doc, key, fn, args.out)
    doc["wall_s"] = args.budget_s - budget.left()
    if args.out is not None:
        args.out.write_text(json.dumps(_finite(doc), indent=1))
        print(f"wrote {args.out}")
    failed = [k for k, v in doc.items() if isinstance(v, dict) and "error" in v]
    print("gpu_check:", "errors in " + ", ".join(failed) if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

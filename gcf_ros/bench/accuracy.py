"""Accuracy per time: ADD(-S) < 0.1 d reached vs wall time per object, one plot.

GCF runs live through the evaluation harness (:mod:`gcf_ros.eval`, the code behind ``gcf-eval``)
on the first N evaluated instances of an LM-O (BOP) folder at the medium noise level, seed 0, once
per iteration limit: {1, 2, 4, 8} with Gauss-Newton, {2, 5, 10, 20} with gradient steps. Each run
is preceded by an untimed pass over the first frame (ray-casting BVHs, allocator). The baselines
cost 10-30 s per instance on a CPU, so their points are read from ``gcf-eval`` JSON files
(``<eval_dir>/{mask,rgb}_medium_n<N>.json``, any N) when those start with the same instances, and
are otherwise run live on fewer instances. A baseline's time is that of ``gcf-eval``: the frame's
refinement time per instance, the mask baseline's oracle masks included. The real frames are
measured only; nothing is tuned on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcf_ros.core.bop import BopDataset
from gcf_ros.eval.harness import EvalConfig, InstanceRecord, evaluate, select_instances
from gcf_ros.eval.metrics import summarize
from gcf_ros.gcf.placement import Placement

GCF_ITERATIONS = {"gauss_newton": (1, 2, 4, 8), "gradient": (2, 5, 10, 20)}
NOISE = "medium"


@dataclass(frozen=True)
class AccuracyPoint:
    """One run: ``series`` (gcf solver or baseline), its iteration limit, ``n`` instances,
    ADD(-S) < 0.1 d accuracy (fraction), median wall time per object (ms), where it came from."""

    series: str
    iterations: int
    n: int
    add_s_01d: float
    time_ms: float
    source: str


def _key(record: InstanceRecord | dict) -> tuple[int, int, int]:
    get = record.get if isinstance(record, dict) else lambda k: getattr(record, k)
    return int(get("scene_id")), int(get("im_id")), int(get("inst_idx"))


def _point(series, iterations, records: list[InstanceRecord], source) -> AccuracyPoint:
    acc = summarize([r.refined for r in records]).add_s_01d
    time_ms = float(np.median([r.time_ms for r in records]))
    return AccuracyPoint(series, iterations, len(records), acc, time_ms, source)


def gcf_points(selected, registry, placement: Placement, progress: Callable[[str], None]) -> tuple:
    """(points of every GCF run, the initial ADD(-S) accuracy of the instances)."""
    from gcf_ros.eval.methods import GcfMethod

    frame0 = (selected[0][0].scene_id, selected[0][0].im_id)
    warmup = [s for s in selected if (s[0].scene_id, s[0].im_id) == frame0]
    points, initial = [], float("nan")
    for solver, limits in GCF_ITERATIONS.items():
        for its in limits:
            progress(f"gcf ({solver}), at most {its} iterations, {len(selected)} instances")
            method = GcfMethod(registry, None, its, solver, placement)
            evaluate(warmup, registry, method)
            records = evaluate(selected, registry, method)
            points.append(_point(f"gcf {solver}", its, records, "live"))
            initial = summarize([r.initial for r in records]).add_s_01d
    return points, initial


def stored_baseline(path: Path, keys: Sequence[tuple[int, int, int]], seed: int):
    """The point of a ``gcf-eval`` JSON if it starts with exactly these instances, else None."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    inst = doc.get("instances", [])[: len(keys)]
    if doc.get("noise") != NOISE or doc.get("seed") != seed or [_key(i) for i in inst] != keys:
        return None
    ok = [
        i["refined"]["add_m"] is not None
        and i["refined"]["add_m"] < 0.1 * i["refined"]["diameter_m"]
        for i in inst
    ]
    time_ms = float(np.median([i["time_ms"] for i in inst]))
    its = int(np.median([i["iterations"] for i in inst]))
    return AccuracyPoint(doc["method"], its, len(inst), float(np.mean(ok)), time_ms, str(path))


def baseline_points(selected, registry, eval_dir: Path, seed: int, live_instances: int,
                    rerun: bool, device: str, progress) -> list[AccuracyPoint]:  # fmt: skip
    """Mask and RGB baselines: stored ``gcf-eval`` results when they match, else live runs."""
    from gcf_ros.baselines.soft_render import SoftRenderConfig
    from gcf_ros.eval.methods import SoftRenderMethod

    keys = [(f.scene_id, f.im_id, inst.inst_idx) for f, inst, *_ in selected]
    points = []
    for space in ("mask", "rgb"):
        stored = None
        for path in [] if rerun else sorted(eval_dir.glob(f"{space}_{NOISE}_n*.json")):
            stored = stored or stored_baseline(path, keys, seed)
        if stored is not None:
            points.append(stored)
            continue
        subset = selected[:live_instances]
        why = "--rerun-baselines" if rerun else "no stored gcf-eval run of these instances"
        progress(f"{space} baseline live on {len(subset)} instances ({why})")
        method = SoftRenderMethod(SoftRenderConfig.for_space(space), registry, device)
        records = evaluate(subset, registry, method)
        points.append(_point(space, records[0].iterations, records, "live"))
    return points


def run_accuracy(dataset: Path, instances: int, eval_dir: Path, live_instances: int = 5,
                 rerun: bool = False, placement: Placement | None = None, seed: int = 0,
                 progress: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Every point of the plot, as a JSON-ready dict; GCF runs under ``placement`` (None: all on
    the CPU, ray casting), the baselines on its network device."""
    placement = placement or Placement()
    ds = BopDataset(dataset)
    registry = ds.model_registry()
    selected = select_instances(ds, registry, EvalConfig(dataset, NOISE, seed, instances))
    points, initial = gcf_points(selected, registry, placement, progress)
    points += baseline_points(
        selected, registry, eval_dir, seed, live_instances, rerun, placement.network_device,
        progress,
    )  # fmt: skip
    return {
        "dataset": str(dataset), "noise": NOISE, "seed": seed, "n_instances": len(selected),
        "initial_add_s_01d": initial, "points": [p.__dict__ for p in points],
    }  # fmt: skip


def plot_accuracy_vs_time(doc: dict, path: Path) -> None:
    """ADD(-S) < 0.1 d vs median time per object (log scale), one line per GCF solver."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    points = [AccuracyPoint(**p) for p in doc["points"]]
    for k, series in enumerate(dict.fromkeys(p.series for p in points)):
        pts = [p for p in points if p.series == series]
        x, y = [p.time_ms for p in pts], [p.add_s_01d for p in pts]
        gcf = series.startswith("gcf")
        stored = ", stored gcf-eval run" if pts[0].source != "live" else ""
        name = "mask (oracle mask)" if series == "mask" else series
        ax.plot(x, y, "o-" if gcf else "s", label=f"{name} (n={pts[0].n}{stored})")
        for p in pts:
            text = f"{p.iterations}" if gcf else f"{series}: {p.iterations}"
            ax.annotate(text, (p.time_ms, p.add_s_01d), textcoords="offset points",
                        xytext=(-30, 6 if k % 2 else -12) if not gcf else (4, 4),
                        fontsize=7)  # fmt: skip
    ax.axhline(doc["initial_add_s_01d"], color="k", ls="--", lw=0.8, label="initial poses")
    ax.set_xscale("log")
    top = max([0.5, doc["initial_add_s_01d"], *(p.add_s_01d for p in points)])
    ax.set(xlabel="wall time per object (ms, median; log scale)", ylabel="ADD(-S) < 0.1 d",
           ylim=(0, min(1.0, 1.2 * top)))  # fmt: skip
    ax.set_title(f"LM-O, {doc['noise']} noise, first {doc['n_instances']} instances "
                 "(labels: iterations)", fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

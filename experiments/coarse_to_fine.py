"""What coarse-to-fine windows (issue 21) save: the refiner with each window schedule on the same
LM-O frames, interleaved in one process on one CPU thread, so the ratios hold on a shared, noisy
machine (gcf-eval's own times swing with the machine's load).

    python experiments/coarse_to_fine.py [--dataset ../shared/data/lmo] [--frames 1,11,21,31,41]
        [--repeats 3] [--schedule NAME=COARSE_PX:COARSE_ITERATIONS ...]

Frames are 1-based positions in dataset order (validation frames 1-50 by default); their
instances start from gcf-eval's medium-noise initial poses (seed 0). Prints, per schedule, the
median ms/object and ms/iteration (frame time over the iterations its instances ran) over the
repeats, both as ratios to the full-size schedule, the mean iterations run and the network's
share of the time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.phase_timer import PhaseTimer
from gcf_ros.eval.cli import frame_range
from gcf_ros.eval.harness import EvalConfig, select_instances
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig, default_checkpoint

SCHEDULES = {"full 128": None, "64 x 2": (64, 2), "64 x 4": (64, 4), "64 x 6": (64, 6),
             "96 x 4": (96, 4)}  # fmt: skip


def _frames(dataset: BopDataset, registry, positions: list[int]) -> list[tuple]:
    """(image, K, detections) of the given frames, with gcf-eval's initial poses."""
    selected = select_instances(dataset, registry, EvalConfig(dataset.root, "medium", 0))
    out = []
    for pos in positions:
        items = frame_range(selected, dataset, f"{pos}-{pos}")
        if items:
            frame = items[0][0]
            dets = [Detection(inst.model_id, T0) for _, inst, _, T0 in items]
            out.append((frame.load_rgb(), frame.K, dets))
    return out


def _schedules(items: list[str]) -> dict:
    if not items:
        return SCHEDULES
    out = {"full 128": None}
    for item in items:
        name, _, spec = item.partition("=")
        px, _, its = spec.partition(":")
        out[name] = (int(px), int(its))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, default=Path("../shared/data/lmo"))
    p.add_argument("--frames", default="1,11,21,31,41", help="1-based positions, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--schedule", action="append", default=[], metavar="NAME=PX:ITERATIONS")
    args = p.parse_args()
    torch.set_num_threads(1)
    dataset = BopDataset(args.dataset)
    registry = dataset.model_registry()
    frames = _frames(dataset, registry, [int(f) for f in args.frames.split(",")])
    n_objects = sum(len(d) for *_, d in frames)
    predictor = NetworkPredictor.from_weights(default_checkpoint())
    refiners = {}
    for name, sched in _schedules(args.schedule).items():
        coarse = {} if sched is None else {"coarse_window_size": sched[0],
                                           "coarse_iterations": sched[1]}  # fmt: skip
        refiners[name] = Refiner(registry, predictor, RefinerConfig.resolve(predictor.weights,
                                                                            **coarse))  # fmt: skip
    for refiner in refiners.values():  # warm-up (mesh caches, allocator)
        refiner.refine(*frames[0])
    per_obj: dict[str, list[float]] = {k: [] for k in refiners}
    per_it: dict[str, list[float]] = {k: [] for k in refiners}
    net_share: dict[str, list[float]] = {k: [] for k in refiners}
    its_mean: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, refiner in refiners.items():  # interleaved: each schedule sees the same load
            refiner.timer = PhaseTimer()
            total, iterations = 0.0, 0
            for image, K, dets in frames:
                t0 = time.perf_counter()
                results = refiner.refine(image, K, dets)
                total += time.perf_counter() - t0
                iterations += sum(r.iterations for r in results)
            per_obj[name].append(total / n_objects)
            per_it[name].append(total / max(iterations, 1))
            net_share[name].append(sum(refiner.timer.times.get("network", [])) / total)
            its_mean[name] = iterations / n_objects
    base_obj, base_it = np.median(per_obj["full 128"]), np.median(per_it["full 128"])
    print(f"{len(frames)} frames, {n_objects} objects, {args.repeats} repeats, 1 thread")
    print("| schedule | ms/object | ratio | ms/iteration | ratio | iterations run | network |")
    print("|---|---|---|---|---|---|---|")
    for name in refiners:
        o, i = np.median(per_obj[name]), np.median(per_it[name])
        print(f"| {name} | {1e3 * o:.0f} | {o / base_obj:.2f} | {1e3 * i:.1f} | "
              f"{i / base_it:.2f} | {its_mean[name]:.2f} | "
              f"{100 * np.median(net_share[name]):.0f} % |")  # fmt: skip


if __name__ == "__main__":
    main()

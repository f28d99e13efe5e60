"""What coarse-to-fine windows (issue 21) save: the refiner with each window schedule on the same
LM-O frames, interleaved in one process on one CPU thread, so the ratios hold on a shared, noisy
machine (gcf-eval's own times swing with the machine's load).

    python experiments/coarse_to_fine.py [--dataset ../shared/data/lmo] [--frames 1,11,21,31,41]
        [--repeats 3] [--schedule NAME=COARSE_PX:COARSE_ITERATIONS[:CHECKPOINT] ...]

Frames are 1-based positions in dataset order (validation frames 1-50 by default); their
instances start from gcf-eval's medium-noise initial poses (seed 0). Prints, per schedule, the
median over the repeats of the CPU ms/object and ms/iteration (time over the iterations the
instances ran), as ratios to the full-size schedule (and the wall-time ratio), the mean
iterations run and the network's share of the wall time. A schedule's CHECKPOINT (e.g.
gcf_lmo_s64.pt) is a second network for its coarse iterations (``gcf-eval --coarse-checkpoint``).
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
from gcf_ros.gcf.checkpoints import find_checkpoint
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
        px, its, *checkpoint = spec.split(":")
        out[name] = (int(px), int(its), *checkpoint)
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
        coarse = {"coarse_window_size": None, "coarse_iterations": 0}  # explicit: the default
        coarse_net = None
        if sched is not None:  # (RefinerConfig.resolve) may be a coarse schedule itself
            coarse = {"coarse_window_size": sched[0], "coarse_iterations": sched[1]}
            if len(sched) > 2:
                coarse_net = NetworkPredictor.from_weights(find_checkpoint(sched[2]))
        config = RefinerConfig.resolve(predictor.weights, **coarse)
        refiners[name] = Refiner(registry, predictor, config, coarse_predictor=coarse_net)
    for refiner in refiners.values():  # warm-up (mesh caches, allocator)
        refiner.refine(*frames[0])
    # CPU time of this process (one thread): on a shared machine the wall time also counts the
    # time slices other jobs took, which swing by 2x within seconds; wall time is printed too.
    cpu = {k: np.zeros(args.repeats) for k in refiners}
    wall = {k: np.zeros(args.repeats) for k in refiners}
    net = {k: np.zeros(args.repeats) for k in refiners}
    its = dict.fromkeys(refiners, 0)
    for rep in range(args.repeats):
        for image, K, dets in frames:  # interleaved per frame: each schedule sees the same load
            for name, refiner in refiners.items():
                refiner.timer = PhaseTimer()
                c0, t0 = time.process_time(), time.perf_counter()
                results = refiner.refine(image, K, dets)
                cpu[name][rep] += time.process_time() - c0
                wall[name][rep] += time.perf_counter() - t0
                net[name][rep] += sum(refiner.timer.times.get("network", []))
                its[name] += sum(r.iterations for r in results) if rep == 0 else 0
    base, base_wall = np.median(cpu["full 128"]), np.median(wall["full 128"])
    print(f"{len(frames)} frames, {n_objects} objects, {args.repeats} repeats, 1 thread")
    print("| schedule | CPU ms/object | ratio | CPU ms/iteration | ratio | wall ratio | "
          "iterations run | network (wall share) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in refiners:
        c, w = np.median(cpu[name]), np.median(wall[name])
        per_it, base_it = c / its[name], base / its["full 128"]
        print(f"| {name} | {1e3 * c / n_objects:.0f} | {c / base:.2f} | {1e3 * per_it:.1f} | "
              f"{per_it / base_it:.2f} | {w / base_wall:.2f} | {its[name] / n_objects:.2f} | "
              f"{100 * np.median(net[name] / wall[name]):.0f} % |")  # fmt: skip


if __name__ == "__main__":
    main()

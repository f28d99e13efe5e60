"""What the default terms cost against the field alone: the same refine calls on the bench frame,
interleaved in one process (one CPU thread), so the ratio holds on a shared, noisy machine.

    python experiments/terms_cost.py [--repeats 7]

Prints per-object times (median over repeats) and per-iteration phase times of each term.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gcf_ros.bench.frame import load_bench_frame
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.phase_timer import PhaseTimer
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig, default_checkpoint
from gcf_ros.resources import default_models_yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = ModelRegistry.from_yaml(default_models_yaml())
    frame = load_bench_frame()
    predictor = NetworkPredictor.from_weights(default_checkpoint())
    dets = [Detection(frame.model_ids[i], frame.T_init[i]) for i in frame.evaluated]
    configs = {"field": ("field",), "field+region": ("field", "region")}
    refiners = {
        k: Refiner(registry, predictor, RefinerConfig.resolve(predictor.weights, terms=t))
        for k, t in configs.items()
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    phases: dict[str, dict[str, list[float]]] = {k: {} for k in configs}
    for refiner in refiners.values():  # warm-up
        refiner.refine(frame.image_rgb, frame.K, dets)
    for _ in range(args.repeats):
        for name, refiner in refiners.items():
            refiner.timer = PhaseTimer()
            t0 = time.perf_counter()
            refiner.refine(frame.image_rgb, frame.K, dets)
            times[name].append((time.perf_counter() - t0) / len(dets))
            its = len(refiner.timer.times["iteration"])
            for phase, values in refiner.timer.times.items():
                phases[name].setdefault(phase, []).append(sum(values) / its)
    base = np.median(times["field"])
    for name in configs:
        t = np.median(times[name])
        per_phase = ", ".join(
            f"{k} {1e3 * np.median(v):.1f}" for k, v in phases[name].items() if k != "iteration"
        )
        print(f"{name:<13} {1e3 * t:7.1f} ms/object  x{t / base:.2f}  per iteration (ms, all "
              f"{len(dets)} objects): {per_phase}")  # fmt: skip


if __name__ == "__main__":
    main()

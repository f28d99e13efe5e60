"""What does the depth term cost? RGB-only vs RGB-D refinement time per object, interleaved in one
process on one thread (shared machines: compare the ratio, not the milliseconds).

    python experiments/depth_cost.py [--repeats 3]

The bench frame (data/demo, gcf_ros.bench.frame) with its medium-noise starts, each evaluated
instance refined alone, RGB-only then with the frame's simulated registered depth
(gcf_ros.bench.cases.simulated_depth), ``--repeats`` rounds. Prints per mode the median time per
object and the summed phase times per object, and the RGB-D / RGB ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gcf_ros.bench.cases import simulated_depth
from gcf_ros.bench.frame import load_bench_frame
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.phase_timer import PhaseTimer
from gcf_ros.gcf.refiner import Detection, Refiner
from gcf_ros.resources import default_models_yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = ModelRegistry.from_yaml(default_models_yaml())
    frame = load_bench_frame()
    depth = simulated_depth(frame, registry)
    refiner = Refiner.from_checkpoint(registry)
    idx = frame.evaluated
    ids, T0 = [frame.model_ids[i] for i in idx], frame.T_init[idx]
    refiner.refine_poses(frame.image_rgb, frame.K, ids[:1], T0[:1])  # warm-up
    totals: dict[str, list[float]] = {"rgb": [], "rgbd": []}
    phases: dict[str, dict[str, float]] = {"rgb": {}, "rgbd": {}}
    for _ in range(args.repeats):
        for mode, times in totals.items():
            for model_id, T in zip(ids, T0, strict=True):
                refiner.timer = PhaseTimer()
                t0 = time.perf_counter()
                refiner.refine(frame.image_rgb, frame.K, [Detection(model_id, T)],
                               depth_m=depth if mode == "rgbd" else None)  # fmt: skip
                times.append(time.perf_counter() - t0)
                for name, values in refiner.timer.times.items():
                    phases[mode][name] = phases[mode].get(name, 0.0) + sum(values)
    refiner.timer = None
    for mode, times in totals.items():
        split = ", ".join(f"{k} {1e3 * v / len(times):.1f}" for k, v in phases[mode].items())
        print(f"{mode}: {1e3 * np.median(times):.0f} ms per object (median); per object: {split}")
    median = np.median(totals["rgbd"]) / np.median(totals["rgb"])
    summed = np.sum(totals["rgbd"]) / np.sum(totals["rgb"])
    print(f"RGB-D / RGB per object: {median:.2f} (medians), {summed:.2f} (sums)")


if __name__ == "__main__":
    main()

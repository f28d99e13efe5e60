"""Print the markdown results table of docs/results.md from gcf-eval JSON files.

    python scripts/results_table.py out/eval/*.json [--first N]

``--first N`` recomputes every run's summary on its first N instances only, so that runs of
different lengths are compared on the same instances (the protocol orders them identically).
``--merge`` joins the runs of one method and noise level (e.g. ``--frames 1-50`` and
``--frames 51-100``) into one row over all their instances. ``--frames A-B`` keeps the instances of
the A-th to B-th frame of each run (1-based, in (scene, image) order of the frames the run holds;
e.g. ``--frames 51-100`` of an all-100-frames LM-O run). Runs with depth (``gcf-eval --depth``) are
labelled so, with their drop fraction and lag.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gcf_ros.eval.metrics import PoseErrors, summarize

COLS = ("add_s_01d", "deg5_cm5", "proj_5px", "acc_pi18", "median_rot_deg", "median_trans_cm",
        "median_proj_px")  # fmt: skip


def _summary(instances: list[dict], stage: str) -> dict:
    errs = [
        PoseErrors(*(float("inf") if e[k] is None else e[k] for k in
                     ("rot_deg", "trans_cm", "proj_px", "add_m", "diameter_m")))
        for e in (inst[stage] for inst in instances)
    ]  # fmt: skip
    return summarize(errs).to_dict()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+")
    p.add_argument("--first", type=int, default=None)
    p.add_argument("--merge", action="store_true", help="one row per method and noise level")
    p.add_argument("--frames", default=None, help="A-B: the A-th to B-th frame of each run")
    args = p.parse_args()
    runs = [_labelled(json.loads(path.read_text())) for path in args.results]
    if args.merge:
        runs = _merged(runs)
    if args.frames:
        runs = [_frames(run, args.frames) for run in runs]
    order = {"small": 0, "medium": 1, "large": 2}
    runs.sort(key=lambda r: (order.get(r["noise"], 9), r["label"]))
    head = ("noise", "method", "n", "ADD(-S)<0.1d", "5°/5cm", "2D<5px", "Acc π/18", "med rot °",
            "med trans cm", "med 2D px", "ms/object")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|---" * 11 + "|")
    seen = set()
    for run in runs:
        inst = run["instances"][: args.first] if args.first else run["instances"]
        rows = [("initial", "initial")] if run["noise"] not in seen else []
        seen.add(run["noise"])
        rows.append((run["label"], "refined"))
        for label, stage in rows:
            m = _summary(inst, stage)
            ms = run["time"]["per_object_ms_median"] if stage == "refined" else 0.0
            vals = [f"{100 * m[c]:.1f}%" for c in COLS[:4]] + [f"{m[c]:.2f}" for c in COLS[4:]]
            print(f"| {run['noise']} | {label} | {m['n']} | " + " | ".join(vals) + f" | {ms:.0f} |")


def _labelled(run: dict) -> dict:
    """The run with its depth settings in its label."""
    if run.get("depth"):
        extra = [f"{100 * run['depth_drop']:.0f} % dropped"] if run.get("depth_drop") else []
        extra += [f"{run['depth_lag']} frame late"] if run.get("depth_lag") else []
        run["label"] += " + depth" + (f" ({', '.join(extra)})" if extra else "")
    return run


def _frames(run: dict, frames: str) -> dict:
    """The run restricted to its A-th to B-th frame (1-based, (scene, image) order)."""
    a, _, b = frames.partition("-")
    lo, hi = int(a), int(b or a)
    keys = sorted({(i["scene_id"], i["im_id"]) for i in run["instances"]})
    keep = set(keys[lo - 1 : hi])
    instances = [i for i in run["instances"] if (i["scene_id"], i["im_id"]) in keep]
    times = [i["time_ms"] for i in instances if i["iterations"] > 0]
    ms = float(np.median(times)) if times else 0.0
    return {**run, "instances": instances, "time": {"per_object_ms_median": ms}}


def _merged(runs: list[dict]) -> list[dict]:
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["noise"], run["label"]), []).append(run)
    out = []
    for (noise, label), parts in groups.items():
        instances = [i for r in parts for i in r["instances"]]
        times = [i["time_ms"] for i in instances if i["iterations"] > 0]
        ms = float(np.median(times)) if times else 0.0
        out.append({"noise": noise, "label": label, "instances": instances,
                    "time": {"per_object_ms_median": ms}})  # fmt: skip
    return out


if __name__ == "__main__":
    main()

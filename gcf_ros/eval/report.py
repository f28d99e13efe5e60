"""gcf-report: accuracy-vs-threshold curves of several gcf-eval runs (JSON files) in one figure."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gcf_ros.eval.metrics import accuracy_curve


def _curves(results: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per stage: ADD(-S)/diameter and rotation errors (deg) of every instance (missing: inf)."""
    out = {}
    for stage in ("initial", "refined"):
        e = [inst[stage] for inst in results["instances"]]
        add_d = np.array(
            [np.inf if x["add_m"] is None else x["add_m"] / x["diameter_m"] for x in e]
        )
        rot = np.array([np.inf if x["rot_deg"] is None else x["rot_deg"] for x in e])
        out[stage] = (add_d, rot)
    return out


def plot_accuracy_curves(runs: Sequence[dict], path: Path) -> None:
    """ADD(-S) accuracy vs threshold (fraction of the diameter) and rotation accuracy vs degrees."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    t_add, t_rot = np.linspace(0, 0.3, 121), np.linspace(0, 40, 161)
    drawn_initial = set()
    for run in runs:
        curves = _curves(run)
        key = (run["noise"], run["seed"], run["n_instances"])
        if key not in drawn_initial:  # the same initial poses for every method of a noise level
            drawn_initial.add(key)
            label = f"initial ({run['noise']}, n={run['n_instances']})"
            axes[0].plot(t_add, accuracy_curve(curves["initial"][0], t_add), "k--", label=label)
            axes[1].plot(t_rot, accuracy_curve(curves["initial"][1], t_rot), "k--", label=label)
        label = f"{run['label']} ({run['noise']}, n={run['n_instances']})"
        axes[0].plot(t_add, accuracy_curve(curves["refined"][0], t_add), label=label)
        axes[1].plot(t_rot, accuracy_curve(curves["refined"][1], t_rot), label=label)
    axes[0].axvline(0.1, color="grey", lw=0.5)
    axes[0].set(xlabel="ADD(-S) threshold / diameter", ylabel="accuracy", ylim=(0, 1))
    axes[1].set(xlabel="rotation error threshold (deg)", ylabel="accuracy", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Pose refinement: accuracy vs threshold (dashed: initial poses)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gcf-report", description=__doc__)
    p.add_argument("results", type=Path, nargs="+", help="gcf-eval --out JSON files")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    args = p.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.results]
    plot_accuracy_curves(runs, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record the refiner's solver settings for a network in its weights file (``meta["refiner"]``).

    python scripts/set_refiner_defaults.py WEIGHTS --damping 0.01 \\
        --rotation-damping gauss_newton=1 gradient=10 --min-confidence 0.01 --note "..."

The settings are chosen per network on SYNTHETIC validation windows with scripts/tune_refiner.py
(never on LM-O frames). ``Refiner`` and the ROS node use them whenever their own config leaves
``damping`` / ``rotation_damping`` / ``min_confidence`` unset, so these settings travel with the
weights as the window size does. The file is rewritten in place; state dict and the rest of meta
are unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gcf_ros.gcf.network import load_gcf_weights, save_gcf_weights
from gcf_ros.gcf.solver import SOLVERS, SolverConfig


def _per_solver(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in SOLVERS or not value:
            raise SystemExit(f"--rotation-damping takes SOLVER=VALUE with SOLVER in {SOLVERS}")
        out[name] = float(value)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", type=Path)
    p.add_argument("--damping", type=float, required=True, help="LM lambda, relative to diag(H)")
    p.add_argument("--rotation-damping", nargs="+", default=[], metavar="SOLVER=VALUE")
    p.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="results with a lower mean predicted weight are REJECTED (default: keep / 0.2)",
    )
    p.add_argument("--note", default="", help="how the values were chosen (command, data)")
    args = p.parse_args()
    rotation = _per_solver(args.rotation_damping)
    for solver in SOLVERS:  # the solver checks its own values
        SolverConfig(solver, args.damping, 1.0, rotation.get(solver, 0.0))
    net, meta = load_gcf_weights(args.weights)
    refiner = {"damping": args.damping, "rotation_damping": rotation, "note": args.note}
    threshold = args.min_confidence
    if threshold is None:  # keep the one the file records, if any
        threshold = (meta.get("refiner") or {}).get("min_confidence")
    if threshold is not None:
        refiner["min_confidence"] = threshold
    meta["refiner"] = refiner
    save_gcf_weights(args.weights, net, meta)
    load_gcf_weights(args.weights)
    print(f"{args.weights}: meta['refiner'] = {meta['refiner']}")


if __name__ == "__main__":
    main()

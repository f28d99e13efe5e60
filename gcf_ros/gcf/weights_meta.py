"""What a weights file records besides the network: its ``meta``, typed, read and written here only.

A weights file (``gcf_ros.gcf.network.save_gcf_weights``) carries the window size S the network was
trained at, the refiner settings chosen for it on SYNTHETIC validation windows (per solver: damping
and rotation damping; the confidence threshold), and how it was trained. Files that record no
settings (those before stage 4: ``gcf_lmo_s64.pt``) get the defaults below.

    python -m gcf_ros.gcf.weights_meta WEIGHTS                   # print what the file records
    python -m gcf_ros.gcf.weights_meta WEIGHTS --set gauss_newton.rotation_damping=5 \\
        --set min_confidence=0.003 --note "how the values were chosen (command, data)"

The editor rewrites the file in place (state dict and the training record unchanged). Settings are
chosen with scripts/tune_refiner.py on synthetic validation windows, never on LM-O frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gcf_ros.gcf.solver import SOLVERS

DEFAULT_WINDOW_SIZE = 64  # S of weights files that do not record theirs (all before stage 4)

# Solver settings for weights files that record none (the S = 64 stage-3 file):
# median rotation error on 96 synthetic validation windows (initial 5.71 deg),
# python scripts/tune_refiner.py, rotation damping 0 / 2 / 5 / 20 at damping 0.1: Gauss-Newton
# 8.18 / 5.14 / 5.15 / 5.51 deg (5: lowest 2D error); gradient (20 iterations) - / 8.87 / 6.26 /
# 5.60 deg. Weights tuned later carry their own (the editor below).
DAMPING = 0.1
MIN_CONFIDENCE = 0.2  # stage 3 on its synthetic validation windows: 1.7 % below (p10 0.30)
ROTATION_DAMPING = {"gauss_newton": 5.0, "gradient": 20.0}
_DEFAULTS_NOTE = "defaults (DAMPING, ROTATION_DAMPING, MIN_CONFIDENCE): not tuned for this network"


@dataclass(frozen=True)
class SolverSettings:
    """damping: LM lambda, relative to diag(H); rotation_damping: the extra damping of the
    rotation block (``gcf_ros.gcf.solver``)."""

    damping: float
    rotation_damping: float

    def __post_init__(self) -> None:
        if self.damping < 0 or self.rotation_damping < 0:
            raise ValueError(f"damping and rotation_damping must be >= 0, got {self}")


def _default_solvers() -> dict[str, SolverSettings]:
    return {s: SolverSettings(DAMPING, ROTATION_DAMPING[s]) for s in SOLVERS}


@dataclass(frozen=True)
class WeightsMeta:
    """A weights file's ``meta``.

    Attributes:
        window_size: S (px) the network was trained at; the refiner crops at it.
        solvers: the settings of every solver in ``SOLVERS`` for this network.
        min_confidence: results with a lower mean predicted weight are REJECTED (the weight's
            scale depends on the network).
        note: how the settings were chosen (command, data, numbers).
        training: how the network was trained (config, command, data seeds, the file it started
            from, validation numbers): a record, never read by the refiner.
    """

    window_size: int = DEFAULT_WINDOW_SIZE
    solvers: Mapping[str, SolverSettings] = field(default_factory=_default_solvers)
    min_confidence: float = MIN_CONFIDENCE
    note: str = _DEFAULTS_NOTE
    training: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.solvers) != set(SOLVERS) or self.window_size < 8 or self.min_confidence < 0:
            raise ValueError(
                f"need settings for exactly the solvers {SOLVERS}, window_size >= 8 and "
                f"min_confidence >= 0, got {sorted(self.solvers)}, {self.window_size}, "
                f"{self.min_confidence}"
            )

    @classmethod
    def from_dict(cls, meta: Mapping) -> WeightsMeta:
        """From a file's plain ``meta`` (files that record nothing get the defaults)."""
        training = {k: v for k, v in meta.items() if k not in ("window_size", "refiner")}
        recorded = meta.get("refiner") or {}
        damping = _per_solver(recorded.get("damping", DAMPING), dict.fromkeys(SOLVERS, DAMPING))
        rotation = _per_solver(recorded.get("rotation_damping", {}), ROTATION_DAMPING)
        return cls(
            int(meta.get("window_size", DEFAULT_WINDOW_SIZE)),
            {s: SolverSettings(damping[s], rotation[s]) for s in SOLVERS},
            float(recorded.get("min_confidence", MIN_CONFIDENCE)),
            str(recorded.get("note", _DEFAULTS_NOTE)),
            training,
        )

    def to_dict(self) -> dict:
        """The plain ``meta`` of a weights file (what ``from_dict`` reads)."""
        refiner = {
            "damping": {s: v.damping for s, v in self.solvers.items()},
            "rotation_damping": {s: v.rotation_damping for s, v in self.solvers.items()},
            "min_confidence": self.min_confidence,
            "note": self.note,
        }
        return {**self.training, "window_size": self.window_size, "refiner": refiner}


def _per_solver(value, default: Mapping[str, float]) -> dict[str, float]:
    """A recorded setting: {solver: value} (solvers not named get their ``default``), or one
    value for every solver (files before per-solver damping)."""
    if isinstance(value, Mapping):
        return {s: float(value.get(s, default[s])) for s in SOLVERS}
    return {s: float(value) for s in SOLVERS}


def read_weights_meta(path: str | Path) -> WeightsMeta:
    from gcf_ros.gcf.network import load_gcf_weights

    return WeightsMeta.from_dict(load_gcf_weights(path)[1])


def edit_weights_meta(path: str | Path, settings: list[str], note: str) -> WeightsMeta:
    """Rewrite the weights file at ``path`` with ``settings`` (``KEY=VALUE``: ``window_size``,
    ``min_confidence``, ``SOLVER.damping``, ``SOLVER.rotation_damping``) and ``note``."""
    from gcf_ros.gcf.network import load_gcf_weights, save_gcf_weights

    net, raw = load_gcf_weights(path)
    meta = WeightsMeta.from_dict(raw)
    solvers, top = dict(meta.solvers), {"note": note}
    for item in settings:
        key, sep, value = item.partition("=")
        name, dot, attr = key.partition(".")
        if sep and dot and name in solvers and attr in ("damping", "rotation_damping"):
            solvers[name] = dataclasses.replace(solvers[name], **{attr: float(value)})
        elif sep and key in ("window_size", "min_confidence"):
            top[key] = int(value) if key == "window_size" else float(value)
        else:
            raise ValueError(
                f"{item!r}: expected window_size=, min_confidence=, SOLVER.damping= or "
                f"SOLVER.rotation_damping= with SOLVER in {SOLVERS}"
            )
    meta = dataclasses.replace(meta, solvers=solvers, **top)
    save_gcf_weights(path, net, meta.to_dict())
    return read_weights_meta(path)  # fail here, not in the refiner, if the file does not load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gcf_ros.gcf.weights_meta",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("weights", type=Path)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--note", default=None, help="how the values were chosen (with --set)")
    args = p.parse_args(argv)
    try:
        if args.settings and not args.note:
            raise ValueError("--set needs --note: how the values were chosen")
        if args.settings:
            meta = edit_weights_meta(args.weights, args.settings, args.note)
        else:
            meta = read_weights_meta(args.weights)
    except (FileNotFoundError, ValueError) as err:
        print(f"weights_meta: {err}", file=sys.stderr)
        return 2
    print(f"{args.weights}: window {meta.window_size} px; min_confidence {meta.min_confidence:g}")
    for name, v in meta.solvers.items():
        print(f"{name}: damping {v.damping:g}, rotation damping {v.rotation_damping:g}")
    print(f"note: {meta.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

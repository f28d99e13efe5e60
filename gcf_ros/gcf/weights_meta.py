"""What a weights file records besides the network (its ``meta``): typed, read and written here.

The window size S the network was trained at, the refiner settings chosen for it on SYNTHETIC
validation windows (scripts/tune_refiner.py; never LM-O frames), and how it was trained. Files that
record no settings (before stage 4: ``gcf_lmo_s64.pt``) get the defaults below. The editor:

    python -m gcf_ros.gcf.weights_meta WEIGHTS         # what the file records
    python -m gcf_ros.gcf.weights_meta WEIGHTS --set rotation_damping.gauss_newton=5 \\
        --set min_confidence=0.003 --note "how the values were chosen (command, data)"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
# A file's meta keys this module owns; the rest is the training record.
_OWN_KEYS = ("window_size", "refiner", "trained_models")
_DEFAULTS_NOTE = "defaults (DAMPING, ROTATION_DAMPING, MIN_CONFIDENCE): not tuned for this network"
_PER_SOLVER = ("damping", "rotation_damping")


@dataclass(frozen=True)
class WeightsMeta:
    """A weights file's ``meta``.

    Attributes:
        window_size: S (px) the network was trained at; the refiner crops at it.
        damping, rotation_damping: per solver (every one of ``SOLVERS``), the field term's LM
            lambda relative to diag(H) and the extra damping of the rotation block.
        min_confidence: results with a lower mean predicted weight are REJECTED (the weight's
            scale depends on the network).
        note: how these settings were chosen (command, data, numbers).
        training: how the network was trained (config, command, data seeds, the file it started
            from, validation numbers): a record, not read by the refiner.
        trained_models: the model ids of the network's training data (empty: not recorded). The
            refiner notes results for other models: the field is untrained for them.
    """

    window_size: int = DEFAULT_WINDOW_SIZE
    damping: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(SOLVERS, DAMPING))
    rotation_damping: Mapping[str, float] = field(default_factory=lambda: dict(ROTATION_DAMPING))
    min_confidence: float = MIN_CONFIDENCE
    note: str = _DEFAULTS_NOTE
    training: Mapping = field(default_factory=dict)
    trained_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = [*self.damping.values(), *self.rotation_damping.values(), self.min_confidence]
        solvers = {*SOLVERS} == {*self.damping} == {*self.rotation_damping}
        if not solvers or min(values) < 0 or self.window_size < 8:
            raise ValueError(f"need settings >= 0 for each of {SOLVERS} and S >= 8, got {self}")

    @classmethod
    def from_dict(cls, meta: Mapping) -> WeightsMeta:
        """From a file's plain ``meta``: a setting recorded as one value is every solver's; what
        a file does not record gets its default."""
        recorded, default = meta.get("refiner") or {}, cls()
        per_solver = {}
        for key in _PER_SOLVER:
            value = recorded.get(key, getattr(default, key))
            value = value if isinstance(value, Mapping) else dict.fromkeys(SOLVERS, value)
            per_solver[key] = {s: float(value.get(s, getattr(default, key)[s])) for s in SOLVERS}
        return cls(
            window_size=int(meta.get("window_size", DEFAULT_WINDOW_SIZE)),
            min_confidence=float(recorded.get("min_confidence", MIN_CONFIDENCE)),
            note=str(recorded.get("note", _DEFAULTS_NOTE)),
            training={k: v for k, v in meta.items() if k not in _OWN_KEYS},
            trained_models=tuple(str(m) for m in meta.get("trained_models", ())),
            **per_solver,
        )

    def to_dict(self) -> dict:
        """The plain ``meta`` of a weights file (what ``from_dict`` reads)."""
        refiner = {k: dict(getattr(self, k)) for k in _PER_SOLVER}
        refiner.update(min_confidence=self.min_confidence, note=self.note)
        own = {"window_size": self.window_size, "refiner": refiner}
        if self.trained_models:
            own["trained_models"] = list(self.trained_models)
        return {**self.training, **own}


def read_weights_meta(path: str | Path) -> WeightsMeta:
    from gcf_ros.gcf.network import load_gcf_weights

    return WeightsMeta.from_dict(load_gcf_weights(path)[1])


def edit_weights_meta(path: str | Path, settings: list[str], note: str) -> WeightsMeta:
    """Rewrite the weights file at ``path`` (the network and training record unchanged) with
    ``settings`` (``KEY=VALUE``: ``window_size``, ``min_confidence``, ``damping.SOLVER``,
    ``rotation_damping.SOLVER``, ``trained_models`` = comma-separated model ids) and ``note``."""
    from gcf_ros.gcf.network import load_gcf_weights, save_gcf_weights

    net, raw = load_gcf_weights(path)
    meta = dataclasses.replace(WeightsMeta.from_dict(raw), note=note)
    for item in settings:
        key, sep, value = item.partition("=")
        name, _, solver = key.partition(".")
        if sep and name in _PER_SOLVER and solver in SOLVERS:
            change = {name: {**getattr(meta, name), solver: float(value)}}
        elif sep and key in ("window_size", "min_confidence"):
            change = {key: int(value) if key == "window_size" else float(value)}
        elif sep and key == "trained_models":
            change = {key: tuple(m.strip() for m in value.split(",") if m.strip())}
        else:
            raise ValueError(f"{item!r}: expected window_size, min_confidence, damping.SOLVER, "
                             f"rotation_damping.SOLVER (SOLVER in {SOLVERS}) or trained_models "
                             "= VALUE")  # fmt: skip
        meta = dataclasses.replace(meta, **change)
    save_gcf_weights(path, net, meta.to_dict())
    return read_weights_meta(path)  # fail here, not in the refiner, if the file does not load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gcf_ros.gcf.weights_meta", description=__doc__)
    p.add_argument("weights", type=Path)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--note", default=None, help="how the values were chosen (with --set)")
    args = p.parse_args(argv)
    try:
        if args.settings and not args.note:
            raise ValueError("--set needs --note: how the values were chosen")
        edit = args.settings and edit_weights_meta(args.weights, args.settings, args.note)
        meta = edit or read_weights_meta(args.weights)
    except (FileNotFoundError, ValueError) as err:
        print(f"weights_meta: {err}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(meta) | {"training": sorted(meta.training)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Leave-one-object-out tables (issue 15, item 6) from scripts/leave_one_out.sh's gcf-eval JSONs.

    python experiments/leave_one_out_table.py out/loo

Reads ``eval_none.json`` (the initial poses) and ``eval_{all,wo1,wo8}[_field].json`` (the default
terms; ``_field``: the field term alone) and prints, for each left-out object and for LM-O frames
51-100 (im_id > 277) and all 100, the metrics of docs/design.md §4 over that object's instances:
the network trained on all eight models against the one trained without the object, same
schedule. A last table compares the two networks on the other seven objects (the control: is the
network without X worse in general, or only on X?).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

LEFT_OUT = {1: "wo1", 8: "wo8"}  # obj_id -> run tag (both non-symmetric: ADD, not ADD-S)
NAMES = {1: "ape", 8: "driller"}
REPORT_FIRST_IM_ID = 278  # LM-O frames 51-100 are im_id >= 278 (frames 1-50: im_id <= 277)
RANGES = {"51-100": lambda r: r["im_id"] >= REPORT_FIRST_IM_ID, "1-100": lambda r: True}
HEADER = "| | n | ADD(-S)<0.1d | 5°/5cm | 2D<5px | med rot ° | med trans cm | med 2D px |"


def _load(folder: Path, name: str) -> list[dict] | None:
    path = folder / f"eval_{name}.json"
    return json.loads(path.read_text())["instances"] if path.is_file() else None


def _metrics(records: list[dict], key: str) -> dict:
    """The design doc's metrics over ``records``' ``key`` ("initial" / "refined") poses."""
    p = [r[key] for r in records]
    add = np.array([x["add_m"] < 0.1 * x["diameter_m"] for x in p])
    rot = np.array([x["rot_deg"] for x in p])
    trans = np.array([x["trans_cm"] for x in p])
    proj = np.array([x["proj_px"] for x in p])
    return {
        "n": len(p), "add": add.mean(), "deg5cm5": ((rot < 5) & (trans < 5)).mean(),
        "proj5": (proj < 5).mean(), "rot": np.median(rot), "trans": np.median(trans),
        "proj": np.median(proj),
    }  # fmt: skip


def _row(label: str, m: dict) -> str:
    rates = " | ".join(f"{100 * m[k]:.1f}%" for k in ("add", "deg5cm5", "proj5"))
    medians = " | ".join(f"{m[k]:.2f}" for k in ("rot", "trans", "proj"))
    return f"| {label} | {m['n']} | {rates} | {medians} |"


def main(folder: Path) -> None:
    none = _load(folder, "none")
    for obj, tag in LEFT_OUT.items():
        for rng, keep in RANGES.items():
            print(f"\nobj_{obj:06d} ({NAMES[obj]}), frames {rng}, medium noise\n")
            print(HEADER)
            print("|---|---|---|---|---|---|---|---|")
            sel = [r for r in none or [] if r["obj_id"] == obj and keep(r)]
            if sel:
                print(_row("initial", _metrics(sel, "initial")))
            for suffix, terms in (("", "field + region (default)"), ("_field", "field alone")):
                for run, who in (("all", "trained with it"), (tag, "**never saw it**")):
                    recs = _load(folder, run + suffix)
                    if recs is None:
                        continue
                    sel = [r for r in recs if r["obj_id"] == obj and keep(r)]
                    print(_row(f"{terms}, network {who}", _metrics(sel, "refined")))
    print("\nControl: the other seven objects, frames 1-100, default terms\n")
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|")
    for obj, tag in LEFT_OUT.items():
        for run in ("all", tag):
            recs = _load(folder, run)
            if recs is None:
                continue
            sel = [r for r in recs if r["obj_id"] != obj]
            print(_row(f"without obj {obj}: network {run}", _metrics(sel, "refined")))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/loo"))

"""How well a per-instance score ranks successes above failures, and a reject threshold for it.

    gcf-confidence out/eval/val.json --key mask_iou            # AUROC and the Youden threshold
    gcf-confidence out/eval/val.json --key mask_iou --threshold 0.35   # apply a chosen one

Success is ADD(-S) < 0.1 d of the refined pose (``gcf-eval`` JSON ``instances``, whose ``scores``
hold the refiner's read-outs). The threshold is chosen on one file (the validation frames) and
reported on another.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def auroc(scores: np.ndarray, success: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random success scores above a random
    failure (ties count half). NaN when either class is empty. By ranks (Mann-Whitney U, tied
    scores sharing their mean rank): O(n log n), so it also serves millions of pixels."""
    s, y = np.asarray(scores, dtype=float).ravel(), np.asarray(success, dtype=bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties share their mean
    u = mean_rank[inverse][y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def youden_threshold(scores: np.ndarray, success: np.ndarray) -> float:
    """The threshold t (accept when score >= t) maximising true-positive minus false-positive
    rate over the observed scores."""
    s, y = np.asarray(scores, dtype=float), np.asarray(success, dtype=bool)
    best, best_t = -np.inf, float(np.min(s)) if len(s) else 0.0
    for t in np.unique(s):
        accept = s >= t
        j = accept[y].mean() - (accept[~y].mean() if (~y).any() else 0.0)
        if j > best:
            best, best_t = j, float(t)
    return best_t


def load(path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, success) of the instances of a gcf-eval JSON that carry ``key``."""
    instances = json.loads(Path(path).read_text())["instances"]
    rows = [
        (i["scores"][key], i["refined"]["add_m"] < 0.1 * i["refined"]["diameter_m"])
        for i in instances
        if i.get("scores") and i["scores"].get(key) is not None
    ]
    if not rows:
        raise ValueError(f"{path}: no instance has the score {key!r}")
    scores, success = zip(*rows, strict=True)
    return np.array(scores, dtype=float), np.array(success, dtype=bool)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gcf-confidence", description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="gcf-eval JSON files")
    p.add_argument("--key", default="confidence", help="the score in each instance's scores")
    p.add_argument("--threshold", type=float, default=None, help="default: Youden's, per file")
    p.add_argument(
        "--lower-is-better", action="store_true", help="the score is an error (e.g. a residual)"
    )
    args = p.parse_args(argv)
    for path in args.results:
        try:
            scores, success = load(path, args.key)
        except (OSError, ValueError, KeyError) as err:
            print(f"gcf-confidence: {err}", file=sys.stderr)
            return 2
        if args.lower_is_better:  # rank by the negated error; thresholds print as errors
            scores = -scores
        t = youden_threshold(scores, success) if args.threshold is None else args.threshold
        accept = scores >= t
        kept = success[accept].mean() if accept.any() else float("nan")
        dropped = success[~accept].mean() if (~accept).any() else float("nan")
        shown = -t if args.lower_is_better else t
        print(
            f"{path}: {args.key} AUROC {auroc(scores, success):.3f} over {len(scores)} "
            f"({success.mean():.1%} successes); threshold {shown:.4g}: accepts "
            f"{accept.mean():.1%}, successes among accepted {kept:.1%}, "
            f"among rejected {dropped:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

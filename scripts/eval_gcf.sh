#!/usr/bin/env bash
# The GCF rows of docs/results.md: both solvers at the three noise levels on the first N evaluated
# LM-O instances (default 100), with the shipped weights.
# Usage: source env.sh && bash scripts/eval_gcf.sh [N] [DATASET]
set -euo pipefail
N="${1:-100}"
DATASET="${2:-../shared/data/lmo}"
OUT="out/eval"
mkdir -p "$OUT"
for noise in small medium large; do
  for solver in gauss_newton gradient; do
    its=8; [[ $solver == gradient ]] && its=20
    gcf-eval --dataset "$DATASET" --method gcf --solver "$solver" --iterations "$its" \
      --noise "$noise" --max-instances "$N" --out "$OUT/gcf_${solver}_${noise}_n${N}.json" \
      2>/dev/null | tail -n +2 | head -3
  done
  gcf-eval --dataset "$DATASET" --method none --noise "$noise" --max-instances "$N" \
    --out "$OUT/none_${noise}_n${N}.json" >/dev/null 2>&1
done

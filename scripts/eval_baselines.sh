#!/usr/bin/env bash
# The baseline table of docs/results.md: none, mask (oracle), rgb at the three noise levels on the
# first N evaluated LM-O instances (N=40 by default: the CPU soft rasterizer needs ~5 s per instance).
# Usage: source env.sh && bash scripts/eval_baselines.sh [N] [DATASET]
set -euo pipefail
N="${1:-40}"
DATASET="${2:-../shared/data/lmo}"
OUT="out/eval"
mkdir -p "$OUT"
for noise in small medium large; do
  for method in none mask rgb; do
    gcf-eval --dataset "$DATASET" --method "$method" --noise "$noise" --max-instances "$N" \
      --out "$OUT/${method}_${noise}_n${N}.json" 2>/dev/null | tail -n +2 | head -3
  done
done
gcf-report "$OUT"/*_n"${N}".json --out "$OUT/curves_n${N}.png"

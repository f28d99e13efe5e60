#!/usr/bin/env bash
# The solver-term rows of docs/results.md (issue 15): LM-O medium noise, the validation frames
# (1-50, where the defaults were chosen) and the report frames (51-100), then all 100 merged.
# Usage: source env.sh && bash scripts/eval_terms.sh [DATASET]
set -euo pipefail
DATASET="${1:-../shared/data/lmo}"
OUT="out/eval/terms"
mkdir -p "$OUT"
run() {  # name, frames, gcf-eval arguments...
  local name="$1" frames="$2"; shift 2
  gcf-eval --dataset "$DATASET" --noise medium --frames "$frames" "$@" \
    --out "$OUT/${name}_${frames}.json" >/dev/null 2>&1
}
for frames in 1-50 51-100; do
  run none "$frames" --method none
  run default "$frames" --method gcf                       # the refiner's defaults
  run field "$frames" --method gcf --terms field           # the learned field alone (before)
  run region "$frames" --method gcf --terms region         # training-free, no network
  run oracle "$frames" --method gcf --terms field,contour --set field_stop=3 --iterations 10
done
for frames in 1-50 51-100; do
  echo "frames $frames"
  python scripts/results_table.py "$OUT"/{default,field,region,oracle}_"$frames".json
done
echo "all 100 frames"
python scripts/results_table.py --merge "$OUT"/{default,field,region,oracle}_*.json

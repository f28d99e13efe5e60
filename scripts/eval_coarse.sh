#!/usr/bin/env bash
# The coarse-to-fine rows of docs/performance.md (issue 21): LM-O medium noise; the schedules
# tried on the validation frames (1-50, where the default was chosen), then the chosen default
# (64 px for the first 2 of 8 iterations) against the full-size schedule on the report frames
# (51-100) and all 100; then the CPU-time ratios (experiments/coarse_to_fine.py). One torch thread
# per run. About 70 minutes on 2 shared cores.
# Usage: source env.sh && bash scripts/eval_coarse.sh [DATASET]
set -euo pipefail
DATASET="${1:-../shared/data/lmo}"
OUT="out/eval/c2f"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
run() {  # name, frames, gcf-eval arguments...
  local name="$1" frames="$2"; shift 2
  gcf-eval --dataset "$DATASET" --method gcf --noise medium --frames "$frames" "$@" \
    --out "$OUT/${name}_${frames}.json" >/dev/null 2>&1
}
coarse() { echo --set "coarse_window_size=$1" --set "coarse_iterations=$2"; }
for frames in 1-50 51-100; do
  run full "$frames" --set coarse_iterations=0        # before issue 21: 128 px throughout
  run default "$frames"                               # the default: 64 px x 2
done
# shellcheck disable=SC2046
{
  run c64x1 1-50 $(coarse 64 1); run c64x4 1-50 $(coarse 64 4); run c64x6 1-50 $(coarse 64 6)
  run c96x2 1-50 $(coarse 96 2); run c96x4 1-50 $(coarse 96 4)
  run w64 1-50 --set window_size=64 --set coarse_iterations=0   # the S = 128 network at 64 px
  run s64net 1-50 --checkpoint gcf_lmo_s64.pt                   # the S = 64 network throughout
  run s64c64x2 1-50 $(coarse 64 2) --coarse-checkpoint gcf_lmo_s64.pt
  run s64c64x4 1-50 $(coarse 64 4) --coarse-checkpoint gcf_lmo_s64.pt
  run field_full 1-50 --terms field --set coarse_iterations=0
  run field_c96x2 1-50 --terms field $(coarse 96 2)
}
if [ -d runs/lmo_simdepth ]; then  # simulated depth (scripts/eval_depth.sh makes it)
  DATASET=runs/lmo_simdepth run rgbd_full 1-50 --depth --set coarse_iterations=0
  DATASET=runs/lmo_simdepth run rgbd_default 1-50 --depth
fi
echo "frames 1-50"
python scripts/results_table.py "$OUT"/*_1-50.json
echo "frames 51-100"
python scripts/results_table.py "$OUT"/{full,default}_51-100.json
echo "all 100 frames"
python scripts/results_table.py --merge "$OUT"/{full,default}_{1-50,51-100}.json
python experiments/coarse_to_fine.py --repeats 5 --schedule "64 x 1=64:1" \
  --schedule "64 x 2=64:2" --schedule "96 x 2=96:2" --schedule "96 x 4=96:4" \
  --schedule "64 x 2, s64 net=64:2:gcf_lmo_s64.pt" --schedule "64 x 4, s64 net=64:4:gcf_lmo_s64.pt"

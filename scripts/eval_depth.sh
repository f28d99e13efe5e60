#!/usr/bin/env bash
# The RGB-D rows of docs/results.md (issue 19): LM-O with simulated depth (gcf-simdepth: real RGB,
# depth rendered from the ground truth with a Kinect-like noise model), RGB-only vs RGB-D at the
# three noise levels, and RGB-D with 30 % of the depth missing or one frame late (medium), on all
# 100 frames; the tables split them into frames 1-50 (where the settings were chosen), 51-100 and
# all 100. One torch thread per run (results depend slightly on the thread count); two runs at a
# time. About 40 minutes on 2 cores.
# Usage: source env.sh && bash scripts/eval_depth.sh [LMO_DATASET]
set -euo pipefail
LMO="${1:-../shared/data/lmo}"
SIM="runs/lmo_simdepth"
OUT="out/eval/depth"
mkdir -p "$OUT"
[ -d "$SIM" ] || gcf-simdepth --dataset "$LMO" --out "$SIM" --seed 0
export OMP_NUM_THREADS=1
run() {  # name, gcf-eval arguments...
  local name="$1"; shift
  gcf-eval --dataset "$SIM" --method gcf "$@" --out "$OUT/$name.json" >"$OUT/$name.log" 2>&1
}
{
  for n in medium small large; do run "rgbd_$n" --noise "$n" --depth; done
  run rgbd_medium_drop30 --noise medium --depth --depth-drop 0.3
} &
{
  for n in medium small large; do run "rgb_$n" --noise "$n"; done
  run rgbd_medium_lag1 --noise medium --depth --depth-lag 1
} &
wait
for frames in 1-50 51-100 1-100; do
  echo "frames $frames"
  python scripts/results_table.py "$OUT"/rgb_{small,medium,large}.json \
    "$OUT"/rgbd_{small,medium,large}.json "$OUT"/rgbd_medium_{drop30,lag1}.json --frames "$frames"
done

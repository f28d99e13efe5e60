#!/usr/bin/env bash
# One GPU call that continues the shipped network's training (issue 15 item 8): fresh
# camera-resolution S = 128 samples synthesized on the GPU machine (no open3d there: the torch
# rasterizer and the models snapshot of scripts/gpu_prepare.sh), then a fine-tune from
# weights/gcf_lmo.pt (config/train_gpu_s128cam.yaml) whose schedule fits MINUTES.
#
#   here:        bash scripts/gpu_prepare.sh                      # writes .gpu/ (carry it)
#   GPU machine: bash scripts/gpu_train.sh $OUT 12000 4 8         # OUT SAMPLES MINUTES SEED
#   CPU check:   DEVICE=cpu WORKERS=2 PYTHON=python bash scripts/gpu_train.sh out/gpu_check_train 64 0.2 8
#   The faster network: CONFIG=config/train_gpu_fast.yaml INIT=weights/gcf_lmo_s64.pt (same call)
#
# Writes OUT/gcf_gpu_s128cam.pt (OUT/gcf_gpu_fast.pt with the fast config; weights-only, the best
# validation checkpoint), OUT/log.jsonl and OUT/synth_manifest.json. The validation set is seed 1
# (val_s128cam, 300 windows), as for the shipped stage. Choose on LM-O frames 1-50 before shipping
# (weights/README.md).
set -euo pipefail
OUT=${1:?usage: gpu_train.sh OUT [SAMPLES] [MINUTES] [SEED]}
N=${2:-12000}
MINUTES=${3:-4}
SEED=${4:-8}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-16}
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-config/train_gpu_s128cam.yaml}
INIT=${INIT:-weights/gcf_lmo.pt}
NAME=$(basename "$CONFIG" .yaml)
NAME=${NAME#train_}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT"
SYNTH=("$PY" -m gcf_ros.train.synth_cli --config "$CONFIG" --workers "$WORKERS"
       --renderer torch --device "$DEVICE" --models-snapshot .gpu/models.npz --snapshot-name default)
t0=$(date +%s)
"${SYNTH[@]}" --out data/synthetic/gpu_s128cam --num "$N" --seed "$SEED"
"${SYNTH[@]}" --out data/synthetic/val_s128cam --num 300 --seed 1
echo "synthesis: $(( $(date +%s) - t0 )) s"
cp data/synthetic/gpu_s128cam/manifest.json "$OUT/synth_manifest.json"
"$PY" -m gcf_ros.train.train_cli --config "$CONFIG" --device "$DEVICE" \
  --data-on-device --init "$INIT" --out "runs/$NAME" \
  --export "$OUT/gcf_$NAME.pt" --max-minutes "$MINUTES" --fit-schedule --no-progress
cp "runs/$NAME/log.jsonl" "$OUT/log.jsonl"

#!/usr/bin/env bash
# One GPU call that continues the shipped network's training (issue 15 item 8): fresh
# camera-resolution S = 128 samples synthesized on the GPU machine (no open3d there: the torch
# rasterizer and the models snapshot of scripts/gpu_prepare.sh), then a fine-tune from
# weights/gcf_lmo.pt (config/train_gpu_s128cam.yaml) whose schedule fits MINUTES.
#
#   here:        bash scripts/gpu_prepare.sh                      # writes .gpu/ (carry it)
#   GPU machine: bash scripts/gpu_train.sh $OUT 12000 4 8         # OUT SAMPLES MINUTES SEED
#   CPU check:   DEVICE=cpu WORKERS=2 PYTHON=python bash scripts/gpu_train.sh out/gpu_check_train 64 0.2 8
#
# Writes OUT/gcf_gpu_s128cam.pt (weights-only, the best validation checkpoint), OUT/log.jsonl and
# OUT/synth_manifest.json. The validation set is seed 1 (val_s128cam, 300 windows), as for the
# shipped stage. Choose on LM-O frames 1-50 before shipping (weights/README.md).
set -euo pipefail
OUT=${1:?usage: gpu_train.sh OUT [SAMPLES] [MINUTES] [SEED]}
N=${2:-12000}
MINUTES=${3:-4}
SEED=${4:-8}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-16}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT"
SYNTH=("$PY" -m gcf_ros.train.synth_cli --config config/train_gpu_s128cam.yaml --workers "$WORKERS"
       --renderer torch --device "$DEVICE" --models-snapshot .gpu/models.npz --snapshot-name default)
t0=$(date +%s)
"${SYNTH[@]}" --out data/synthetic/gpu_s128cam --num "$N" --seed "$SEED"
"${SYNTH[@]}" --out data/synthetic/val_s128cam --num 300 --seed 1
echo "synthesis: $(( $(date +%s) - t0 )) s"
cp data/synthetic/gpu_s128cam/manifest.json "$OUT/synth_manifest.json"
"$PY" -m gcf_ros.train.train_cli --config config/train_gpu_s128cam.yaml --device "$DEVICE" \
  --data-on-device --init weights/gcf_lmo.pt --out runs/gpu_s128cam \
  --export "$OUT/gcf_gpu_s128cam.pt" --max-minutes "$MINUTES" --fit-schedule --no-progress
cp runs/gpu_s128cam/log.jsonl "$OUT/log.jsonl"

#!/usr/bin/env bash
# Prepare the one-call GPU check (scripts/gpu_check.py) for a GPU machine that has torch but not
# open3d, PyTorch3D or the LM-O folder (docs/performance.md, "GPU path"): writes .gpu/ (ignored by
# git through .git/info/exclude; ~30 MB) and prints the device commands to run with
# `carry: [".gpu"]`: scripts/gpu_check.py (issue 21) and scripts/gpu_train.sh (issue 15 item 8).
set -euo pipefail
cd "$(dirname "$0")/.."
source env.sh
LMO=${LMO:-../shared/data/lmo}
mkdir -p .gpu .git/info
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
python scripts/gpu_check.py --write-models-snapshot .gpu/models.npz --lmo "$LMO" > /dev/null
rm -rf .gpu/lmo; python scripts/lmo_subset.py --dataset "$LMO" --out .gpu/lmo --frames 51-100 > /dev/null
du -sh .gpu/models.npz .gpu/lmo
cat <<'CMD'
device commands (carry: [".gpu"], timeout_s 540), one per call:
  the GPU check (issue 21):
export PYTHONUNBUFFERED=1; python3 scripts/gpu_check.py --out $OUT/gpu_check.json --models-snapshot .gpu/models.npz --lmo .gpu/lmo --budget-s 450 2>&1 | tee $OUT/gpu_check.log
  the next training stage (issue 15 item 8; weights/README.md):
bash scripts/gpu_train.sh $OUT 12000 4 8 2>&1 | tee $OUT/gpu_train.log
CMD

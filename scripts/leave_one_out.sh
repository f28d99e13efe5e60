#!/usr/bin/env bash
# Leave-one-object-out on LM-O (issue 15, item 6; docs/results.md, "Session 11: leave-one-object-out").
# Three S = 64 networks trained from scratch with one short schedule (config/loo/train_*.yaml):
# on all eight LM-O models, without obj_000001 (ape), without obj_000008 (driller). Each is then
# refined on every LM-O instance (all 100 frames, medium noise, seed 0); the summary compares,
# per left-out object, the network that never saw it with the one that did.
# About 1.5 hours on 2 cores: synthesis ~2 min per set, training ~35 min per network (three at a
# time), evaluation ~5 min per run (7 runs). Nothing here reads an LM-O frame before evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
source env.sh
LMO=${LMO:-../shared/data/lmo}
mkdir -p out/loo
for tag in all wo1 wo8; do
  gcf-synth --config config/loo/train_$tag.yaml --out data/synthetic/loo_$tag --num 8000 --seed 30 --workers 2
  gcf-synth --config config/loo/train_$tag.yaml --out data/synthetic/loo_${tag}_val --num 200 --seed 31 --workers 2
done
for tag in wo1 wo8 all; do  # side by side, one thread each (as run in session 11)
  gcf-train --config config/loo/train_$tag.yaml --threads 1 > out/loo/train_$tag.log 2>&1 &
done
wait
for tag in all wo1 wo8; do  # the default terms (field + region), then the field alone
  gcf-eval --dataset "$LMO" --method gcf --noise medium --seed 0 \
    --checkpoint runs/loo/$tag/gcf_loo_$tag.pt --out out/loo/eval_$tag.json
  gcf-eval --dataset "$LMO" --method gcf --noise medium --seed 0 --terms field \
    --checkpoint runs/loo/$tag/gcf_loo_$tag.pt --out out/loo/eval_${tag}_field.json
done
gcf-eval --dataset "$LMO" --method none --noise medium --seed 0 --out out/loo/eval_none.json
python experiments/leave_one_out_table.py out/loo

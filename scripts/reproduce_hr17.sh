#!/usr/bin/env bash
# Reproduce Haber & Ruthotto 2017 Sec. 6 (docs/reproduction.md) on CPU. Resumable: a finished
# (dataset, network) run has a results.json and is skipped; an interrupted one resumes at its
# level and epoch (multilevel backups under its run directory). About 75 min (2-D sets) and
# 50 min (Fashion-MNIST) on 2 cores; run both loops in parallel with `&` if you have cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3
PY=.venv/bin/python
for ds in ellipses swiss_roll peaks; do
  for net in resnet antisymmetric verlet; do
    [ -f runs/hr17_toy/$ds/$net/results.json ] && continue
    $PY -m training.recipes.hr17_toy --dataset $ds --network $net \
      --out runs/hr17_toy  # default epochs per level: 300 (N<=32), 200, 100, 50, 30, 20
  done
done
for net in resnet antisymmetric verlet; do
  [ -f runs/hr17_fashion_mnist/$net/results.json ] && continue
  $PY -m training.recipes.hr17_fashion_mnist --network $net --epochs 2 2 2 --out runs/hr17_fashion_mnist
done
$PY -m training.recipes.hr17_report > /dev/null

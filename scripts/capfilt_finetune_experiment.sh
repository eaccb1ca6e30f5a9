#!/usr/bin/env bash
# Does CapFilt pay off? Corrupt Flickr8k train (30% of captions swapped for other images' captions),
# clean it with `blipkit capfilt` (and with the filter alone), fine-tune the same starting model on each,
# and score them on Flickr8k test. The figures are in docs/training.md.
#
#   bash scripts/capfilt_finetune_experiment.sh FILTER_MODEL OUT_DIR [STEPS]
#
# FILTER_MODEL is CapFilt's captioner and ITM filter. Every fine-tune starts from the built-in recipe's
# initial weights (MiniLM + EfficientNet-Lite, no caption training), so the runs differ only in their
# data; each takes STEPS steps (default 800) of 32 captions. Each stage is skipped when its output exists:
# rerun the command after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: capfilt_finetune_experiment.sh FILTER_MODEL OUT_DIR [STEPS]}
OUT=${2:?usage: capfilt_finetune_experiment.sh FILTER_MODEL OUT_DIR [STEPS]}
STEPS=${3:-800}
DATA=${FLICKR8K:-../shared/data/flickr8k/dataset_flickr8k.json}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
PY=.venv/bin/python BK=.venv/bin/blipkit
mkdir -p "$OUT"

# 1. the noisy set, and the filter alone as a detector of the swapped captions
[ -f "$OUT/filter/capfilt_experiment.json" ] ||
  $PY scripts/capfilt_experiment.py --model "$MODEL" --data "$DATA" --out-dir "$OUT/filter" --no-progress
# 2. CapFilt proper: a nucleus-sampled caption per image, then the ITM filter over originals and synthetics
[ -f "$OUT/capfilt.json" ] ||
  $BK capfilt --data "$OUT/filter/noisy.json" --model "$MODEL" --out "$OUT/capfilt.json" \
    --decisions "$OUT/capfilt_decisions.jsonl" --no-progress
# 3. the shared starting point
[ -f "$OUT/init/model.safetensors" ] ||
  $PY -m blipkit.training.init_weights "$OUT/init" --config configs/builtin.yaml
# 4. one fine-tune per training set (noisy; CapFilt; the filter alone, no synthetic captions), then the
#    test split's caption scores
for name in noisy capfilt filter; do
  case $name in
    noisy) data=$OUT/filter/noisy.json ;;
    capfilt) data=$OUT/capfilt.json ;;
    filter) data=$OUT/filter/cleaned.json ;;
  esac
  [ -f "$OUT/ft-$name/model.safetensors" ] ||
    $BK finetune caption --data "$data" --split train --model "$OUT/init" --output "$OUT/ft-$name" \
      --max-steps "$STEPS" --batch-size 32 --lr 2e-4 --bf16 --save-steps 200 --resume --no-progress
  [ -f "$OUT/eval-$name/report.json" ] ||
    $BK eval caption --data "$DATA" --split test --model "$OUT/ft-$name" --out-dir "$OUT/eval-$name" \
      --no-progress
done

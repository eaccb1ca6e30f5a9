#!/usr/bin/env bash
# Every figure in MODEL_CARD.md, produced by `blip-assistant model eval` on the held-out test splits.
# Usage: bash packaging/model/eval_builtin.sh [MODEL (default builtin)] [OUT_DIR (default runs/eval)]
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-builtin}
OUT=${2:-runs/eval}
D=${BLIP_ASSISTANT_DATA_DIR:-../shared/data}
# --no-fast: the model card's figures are the float32 path's; tests/benchmarks/quality_guard.py measures the
# fast path (the default on CPUs with bfloat16 units) against them.
BK=".venv/bin/blip-assistant model"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
$BK eval caption --data "$D/flickr8k/dataset_flickr8k.json" --split test -m "$M" --no-fast --out-dir "$OUT/caption"
$BK eval retrieval --data "$D/flickr8k/dataset_flickr8k.json" --split test -m "$M" --no-fast --out-dir "$OUT/retrieval"
$BK eval vqa --data "$D/daquar/daquar_test_questions.json" --split test -m "$M" --no-fast --out-dir "$OUT/daquar"
.venv/bin/python packaging/model/make_easy_vqa.py "$OUT/easyvqa_test.jsonl" test
$BK eval vqa --data "$OUT/easyvqa_test.jsonl" --split test -m "$M" --no-fast --out-dir "$OUT/easyvqa"

#!/usr/bin/env bash
# Reproduce the shipped model from FER2013 folders, end to end, on CPU:
#   1. train `edge`, 80 epochs, float32, seed 0 (runs/edge-main); its best-val epoch is kept
#   2. int8 conversion with a float-vs-int8 parity check, into models/
#   3. the issue #5 measurement: `edgefer classify` on val/ + evaluate-csv
# About 1.5-2 hours on 2 CPU cores (`--precision mixed_bfloat16` halves that on CPUs with
# AVX512-BF16, but is not the recipe of the shipped file). Interrupted? Run it again: a finished
# step is kept and an unfinished training run resumes from its last epoch.
#
#   bash train/reproduce.sh [DATA_DIR]        (default ../shared/data/fer2013)
set -euo pipefail
DATA=${1:-../shared/data/fer2013}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-models/edgefer-fer2013-int8.tflite}
RUN="$RUNS/edge-main"

if [ -f "$RUN/state.json" ]; then
  python -m train fit --resume --out "$RUN"
else
  python -m train fit "$DATA" --out "$RUN" --arch edge --epochs 80
fi
edgefer convert "$RUN/model.keras" -o "$MODEL" --quantize int8 \
  --calibration "$DATA/train" --validate "$DATA/val" --force
status=0
edgefer classify "$DATA/val" -r -o "$RUN/val-int8.csv" --model "$MODEL" -q || status=$?
[ "$status" -le 1 ] || exit "$status"  # 1: some files failed, and have error rows
python -m train evaluate-csv "$RUN/val-int8.csv" --labels-from-parent-dir

#!/usr/bin/env bash
# From a finished training run to a shipped model: one temperature fitted on val and folded into
# the model, int8 conversion with a float-vs-int8 parity check, then the issue #5 measurement
# (`edgefer classify` on val + evaluate-csv, into $RUN/val-int8-metrics.json). The last step of
# train/reproduce*.sh.
#
#   bash train/ship-model.sh RUN_DIR MODEL.tflite DATA_DIR
set -euo pipefail
RUN=$1
MODEL=$2
DATA=$3
python -m train calibrate "$RUN/model.keras" "$DATA/val" --out "$RUN/calibrated"
edgefer convert "$RUN/calibrated/model.keras" -o "$MODEL" --quantize int8 \
  --calibration "$DATA/train" --validate "$DATA/val" --force
status=0
edgefer classify "$DATA/val" -r -o "$RUN/val-int8.csv" --model "$MODEL" -q || status=$?
[ "$status" -le 1 ] || exit "$status"  # 1: some files failed, and have error rows
python -m train evaluate-csv "$RUN/val-int8.csv" --labels-from-parent-dir

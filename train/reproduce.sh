#!/usr/bin/env bash
# Reproduce the shipped model from FER2013 folders, end to end, on CPU:
#   1. the teacher: `edge`, 80 epochs (runs/edge-main)
#   2. the shipped student: `edge` again, 80 epochs, distilled from the teacher (runs/edge-kd)
#   3. int8 conversion with a float-vs-int8 parity check, into models/
#   4. the issue #5 measurement: `edgefer classify` on val/ + evaluate-csv
# About 2 x 1.5-2 hours on 2 cores. Interrupted? Run it again: each finished step is kept and
# an unfinished training run resumes from its last epoch.
#
#   bash train/reproduce.sh [DATA_DIR]        (default ../shared/data/fer2013)
set -euo pipefail
DATA=${1:-../shared/data/fer2013}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-models/edgefer-fer2013-int8.tflite}

fit() {  # fit OUT ARGS...: start the run, or resume it where it stopped
  local out=$1
  shift
  if [ -f "$out/state.json" ]; then
    python -m train fit --resume --out "$out"
  else
    python -m train fit "$DATA" --out "$out" "$@"
  fi
}

fit "$RUNS/edge-main" --arch edge --epochs 80
fit "$RUNS/edge-kd" --arch edge --epochs 80 --seed 1 --patience 0 --label-smoothing 0 \
  --teacher "$RUNS/edge-main/model.keras" --teacher-weight 0.5 --teacher-temperature 2
edgefer convert "$RUNS/edge-kd/model.keras" -o "$MODEL" --quantize int8 \
  --calibration "$DATA/train" --validate "$DATA/val" --force
status=0
edgefer classify "$DATA/val" -r -o "$RUNS/edge-kd/val-int8.csv" --model "$MODEL" -q || status=$?
[ "$status" -le 1 ] || exit "$status"  # 1: some files failed, and have error rows
python -m train evaluate-csv "$RUNS/edge-kd/val-int8.csv" --labels-from-parent-dir

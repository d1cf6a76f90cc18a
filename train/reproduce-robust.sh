#!/usr/bin/env bash
# Reproduce the shipped robust model (models/edgefer-fer2013-robust-int8.tflite, `--model
# robust`) from FER2013 folders: the 4-stage `edge` (widths 48/96/192/192) trained from scratch
# for 300 epochs on cached soft targets of four teachers, then calibrated and converted:
#   1. teachers (GPU): three ResNet-18 trained by `python -m train.torchkd run` (gpu-kd2: 100-101
#      epochs each in 175 s on one H200; on a CPU this step takes days). Only their predictions
#      for the train images are used (teachers-train.npy); the student it also trains is not.
#   2. the shipped default model (models/edgefer-fer2013-int8.tflite, edge-kd6, the default
#      since 2026-11-30) as the fourth teacher: its answers, cached like the others'.
#   3. edge-p1 (CPU): 300 epochs, soft targets only, T 2, mixup 0.2, bfloat16, seed 10; about
#      6.6 hours on 2 cores with AVX512-BF16 (elsewhere drop --precision: float32, about 2x
#      slower). Interrupted? Run this again: it resumes from the last finished epoch.
#   4. temperature calibration on val, int8 conversion with a parity check, and the measures:
#      `edgefer classify` + evaluate-csv on val, and `python -m train robustness`.
#
#   bash train/reproduce-robust.sh [DATA_DIR]        (default ../shared/data/fer2013)
set -euo pipefail
DATA=${1:-../shared/data/fer2013}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-models/edgefer-fer2013-robust-int8.tflite}
TEACHERS="$RUNS/gpu-kd2/device/teachers-train.npy"
RUN="$RUNS/edge-p1"

if [ ! -s "$TEACHERS" ]; then
  [ -s "$RUNS/fer2013-48.npz" ] || python -m train.torchkd pack "$DATA" --out "$RUNS/fer2013-48.npz"
  python -m train.torchkd run "$RUNS/fer2013-48.npz" --out "$(dirname "$TEACHERS")" \
    --teacher-batch 512 --teacher-epochs 100 --batch 256 --student-lr 3e-3 --student-epochs 1
fi

if [ -f "$RUN/state.json" ]; then
  python -m train fit --resume --out "$RUN"
else
  python -m train fit "$DATA" --out "$RUN" --arch edge --arch-args '{"widths": [48, 96, 192, 192]}' \
    --epochs 300 --precision mixed_bfloat16 --label-smoothing 0 --patience 0 \
    --teacher-temperature 2 --teacher "$TEACHERS" --teacher models/edgefer-fer2013-int8.tflite \
    --teacher-weight 1 --augment-args '{"mixup": 0.2}' --seed 10
fi

bash train/ship-model.sh "$RUN" "$MODEL" "$DATA"
python -m train robustness "$DATA/val" --model "$MODEL" --against default

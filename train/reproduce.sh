#!/usr/bin/env bash
# Reproduce the shipped model from FER2013 folders, end to end, on CPU. It is the last of a
# chain of `edge` runs, each distilled from int8 conversions of the ones before:
#   edge-main  80 epochs, float32, seed 0 (the model shipped before; a teacher here)
#   edge-deep  80 epochs, a deeper, narrower variant (stem 16, widths 32/64/128, blocks 2,2,3)
#   edge-kd3   80 epochs, teachers edge-main + edge-deep (targets cached per image)
#   edge-kd4   120 epochs, teachers edge-main + edge-deep + edge-kd3 (cached)
#   edge-kd5   120 epochs, teachers edge-main + edge-kd3 + edge-deep + edge-kd4, online
#   edge-kd6   160 epochs, teachers edge-kd3 + edge-kd4 + edge-kd5, online, mixup 0.2,
#              soft targets only: the shipped model
# then temperature calibration on val, int8 conversion with a float-vs-int8 parity check into
# models/, and the issue #5 measurement (`edgefer classify` on val/ + evaluate-csv).
# bfloat16 needs a CPU with AVX512-BF16 or AMX; elsewhere drop --precision (float32, about 2x
# slower). About 20 hours on 2 CPU cores. Interrupted? Run it again: finished steps are kept and
# an unfinished training run resumes from its last epoch.
#
#   bash train/reproduce.sh [DATA_DIR]        (default ../shared/data/fer2013)
set -euo pipefail
DATA=${1:-../shared/data/fer2013}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-models/edgefer-fer2013-int8.tflite}
T="$RUNS/teachers"
BF16=(--precision mixed_bfloat16)
KD=(--label-smoothing 0 --patience 0 --teacher-temperature 2)

fit_run() {  # NAME FIT-ARGS...: train $RUNS/NAME, or resume it (a finished run stays as it is)
  local run="$RUNS/$1"
  shift
  if [ -f "$run/state.json" ]; then
    python -m train fit --resume --out "$run"
  else
    python -m train fit "$DATA" --out "$run" --arch edge "$@"
  fi
}
teacher() {  # NAME: $T/NAME-int8.tflite from $RUNS/NAME/model.keras
  mkdir -p "$T"
  [ -s "$T/$1-int8.tflite" ] || edgefer convert "$RUNS/$1/model.keras" -o "$T/$1-int8.tflite" \
    --quantize int8 --calibration "$DATA/train" --force
}

fit_run edge-main --epochs 80
teacher edge-main
fit_run edge-deep --epochs 80 "${BF16[@]}" \
  --arch-args '{"stem": [16], "widths": [32, 64, 128], "blocks": [2, 2, 3]}'
teacher edge-deep
fit_run edge-kd3 --epochs 80 "${BF16[@]}" "${KD[@]}" --seed 2 \
  --teacher "$T/edge-main-int8.tflite" --teacher "$RUNS/edge-deep/model.keras"
teacher edge-kd3
fit_run edge-kd4 --epochs 120 "${BF16[@]}" "${KD[@]}" --seed 3 \
  --teacher "$T/edge-main-int8.tflite" --teacher "$RUNS/edge-deep/model.keras" \
  --teacher "$RUNS/edge-kd3/model.keras"
teacher edge-kd4
fit_run edge-kd5 --epochs 120 "${BF16[@]}" "${KD[@]}" --seed 4 --teacher-online \
  --teacher "$T/edge-main-int8.tflite" --teacher "$T/edge-kd3-int8.tflite" \
  --teacher "$T/edge-deep-int8.tflite" --teacher "$T/edge-kd4-int8.tflite"
teacher edge-kd5
fit_run edge-kd6 --epochs 160 "${BF16[@]}" "${KD[@]}" --seed 5 --teacher-online \
  --teacher-weight 1 --augment-args '{"mixup": 0.2}' \
  --teacher "$T/edge-kd3-int8.tflite" --teacher "$T/edge-kd4-int8.tflite" \
  --teacher "$T/edge-kd5-int8.tflite"

bash train/ship-model.sh "$RUNS/edge-kd6" "$MODEL" "$DATA"

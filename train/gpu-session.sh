#!/usr/bin/env bash
# One lent GPU, one command: `python -m train.torchkd run` (three ResNet-18 teachers, then the
# 4-stage `edge` student grown from the shipped model and taught by them), then here the int8
# model and the issue #5 measure (docs/training.md, "Training on a GPU"). Three steps:
#
#   bash train/gpu-session.sh prepare [DATA_DIR]     here, before: the pack and the student's
#       start in .devdata/ (checked to fit the 64 MiB a device call carries); prints the call
#   bash train/gpu-session.sh device [RUN-ARGS...]   there, the one command: python3 and torch
#       alone (train.torchkd needs nothing else), files into $OUT; about 540 s on an H200
#   bash train/gpu-session.sh after DIR [DATA_DIR]   here, after: DIR is the files that came
#       back; from-torch, then train/ship-model.sh (calibrate, int8, classify val, score), and
#       McNemar against the shipped model
#
# Run it from the repository's root (the device runs commands there). DATA_DIR defaults to
# ../shared/data/fer2013. Environment: DEVDATA (default .devdata: the carried files), RUNS
# (prepare; default runs), PYTHON (device; default python3), DEVICE (default cuda), RUN (after;
# default runs/gpu-kd3), CKPT (after; default student-best.pt, the best val epoch, as fit's
# model.keras is). RUN-ARGS go after the session's own flags to `train.torchkd run`, so they
# win: a CPU rehearsal passes small --teacher-seconds and the like.
set -euo pipefail
cmd=${1:-}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVDATA=${DEVDATA:-.devdata}
PACK=$DEVDATA/fer2013-48.npz
INIT=$DEVDATA/kd6-grown-init.pt
SHIPPED=$ROOT/models/edgefer-fer2013-int8.tflite
WIDTHS='{"widths": [48, 96, 192, 192]}'
LIMIT_MIB=64  # what one device call carries: the working tree and the named ignored paths

case $cmd in
prepare)
  DATA=${1:-../shared/data/fer2013}
  RUNS=${RUNS:-runs}
  mkdir -p "$DEVDATA"
  python -m train.torchkd pack "$DATA" --out "$PACK"
  python -m train from-tflite "$SHIPPED" "$DATA" --out "$RUNS/kd6r"
  python -m train to-torch "$RUNS/kd6r/model.keras" --out "$INIT" --arch-args "$WIDTHS"
  python - "$PACK" "$INIT" "$LIMIT_MIB" "$ROOT" <<'EOF'
import os
import subprocess
import sys
from pathlib import Path

import torch

from train.torchkd import pack_meta

pack, init, limit, root = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 2**20, Path(sys.argv[4])
ck, meta = torch.load(init, map_location="cpu"), pack_meta(Path(pack))
if list(ck["labels"]) != meta["labels"]:  # `run` would refuse it on the device, minutes in
    sys.exit(f"{init}: labels {ck['labels']} are not the pack's {meta['labels']}")
listed = subprocess.run(  # the working tree that travels: tracked and not ignored
    ["git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z"],
    capture_output=True,
    check=True,
).stdout.decode().split("\0")
tree = sum(os.path.getsize(root / f) for f in listed if f and (root / f).is_file())
if (root / "shared").is_dir():  # travels with the tree
    tree += sum(p.stat().st_size for p in (root / "shared").rglob("*") if p.is_file())
sizes = {"working tree": tree, pack: os.path.getsize(pack), init: os.path.getsize(init)}
for name, n in sizes.items():
    print(f"{n / 1e6:8.1f} MB  {name}")
total = sum(sizes.values())
print(f"{total / 1e6:8.1f} MB  together ({total / 2**20:.1f} MiB of {limit // 2**20} MiB)")
print(f"pack: {meta['n_train']} train, {meta['n_val']} val images; labels {meta['labels']}")
if total > limit:
    sys.exit("too large for one device call: ignore or carry less")
EOF
  echo "next, the device call (then give the machine back): run(command='bash" \
    "train/gpu-session.sh device', carry=['$PACK', '$INIT'], timeout_s=600)"
  ;;
device)
  : "${OUT:?device: \$OUT, the folder whose files come back, is not set}"
  for f in "$PACK" "$INIT"; do
    [ -s "$f" ] || { echo "device: $f is missing: run prepare here, and carry it" >&2; exit 2; }
  done
  work=$(mktemp -d)
  start=$SECONDS
  # Sized for one call (at most 600 s): gpu-kd2's command took 376 s for 175 + 165 s of
  # training, so about 40 s goes to loading, CUDA and the predictions; 170 + 330 s -> ~540 s.
  # Should it run long, --stop-by ends the student early with its files written before the
  # call's limit (600 s) kills the command, and them with it.
  # python3 -m finds train/ in the working directory; PYTHONPATH, from anywhere else
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m train.torchkd run \
    "$PACK" --out "$OUT" --work "$work" --device "${DEVICE:-cuda}" --teacher-batch 512 \
    --teacher-seconds 170 --batch 256 --student-lr 1e-3 --student-seconds 330 \
    --student-init "$INIT" --stop-by 560 "$@"
  echo "device: the command took $((SECONDS - start)) s; files in \$OUT:"
  ls -l "$OUT"
  ;;
after)
  SRC=${1:?after: DIR, the files that came back from the device}
  DATA=${2:-../shared/data/fer2013}
  RUN=${RUN:-runs/gpu-kd3}
  CKPT=${CKPT:-student-best.pt}
  mkdir -p "$RUN/device"
  cp "$SRC"/* "$RUN/device/"  # DIR may be read-only; teachers-train.npy is for fit --teacher
  chmod u+w "$RUN/device"/*
  summary=()
  [ -s "$RUN/device/summary.json" ] && summary=(--summary "$RUN/device/summary.json")
  python -m train from-torch "$RUN/device/$CKPT" --out "$RUN" "${summary[@]}"
  bash "$ROOT/train/ship-model.sh" "$RUN" "$RUN/edgefer-gpu-int8.tflite" "$DATA"
  status=0
  edgefer classify "$DATA/val" -r -o "$RUN/shipped-val-int8.csv" --model "$SHIPPED" -q || status=$?
  [ "$status" -le 1 ] || exit "$status"  # 1: some files failed, and have error rows
  python - "$RUN/val-int8.csv" "$RUN/shipped-val-int8.csv" <<'EOF'
import sys

from train.csveval import compare_rows, read_results

new, shipped = sys.argv[1], sys.argv[2]
r = compare_rows(read_results(new), read_results(shipped))
a, b = r["accuracy_a"], r["accuracy_b"]
print(
    f"{r['images']} val images: new int8 {a:.4f}, shipped {b:.4f}; right only for the new "
    f"{r['only_a_right']}, only for the shipped {r['only_b_right']} (McNemar p "
    f"{r['mcnemar_p']:.3f}); top-1 agreement {r['top1_agreement']:.3f}"
)
print(f"issue #5 (>= 0.70): {'met' if a >= 0.70 else 'not met'} ({a:.4f})")
verdict = "better than" if a > b else "not better than"
sure = "beyond chance" if r["mcnemar_p"] < 0.05 else "not beyond chance"
print(f"against the shipped model: {verdict} it ({sure}, p {r['mcnemar_p']:.3f})")
EOF
  ;;
*)
  sed -n '2,19p' "$0" >&2
  exit 2
  ;;
esac

"""Convert one Keras model four ways with ``edgefer.convert`` (run in a child process by run.py,
so that TensorFlow is imported there, not in the process that measures the device path)."""

from __future__ import annotations

from pathlib import Path

from edgefer.convert import QUANTIZATIONS, convert


def main(keras: str, out_dir: str, calibration_dir: str, calibration_size: int) -> None:
    for kind in QUANTIZATIONS:
        convert(
            Path(keras),
            Path(out_dir) / f"{kind}.tflite",
            quantize=kind,
            calibration_dir=Path(calibration_dir) if kind == "int8" else None,
            calibration_size=calibration_size,
            force=True,
        )

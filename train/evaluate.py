"""Evaluate a saved model on a labelled folder: metrics.json, confusion matrix and sample PNGs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.spec import ModelSpec, is_tflite
from train.data import Split, list_labels, load_folder, splits_hint
from train.metrics import format_report, log_loss, predict_probs, summarize
from train.plots import plot_confusion, plot_samples
from train.tfenv import keras


def load_model_and_spec(model_path: Path) -> tuple[keras.Model, ModelSpec]:
    """The Keras model and the ``spec.json`` beside it.

    Raises:
        FileNotFoundError: no model there, or no spec.json next to it.
        ValueError: a TFLite model (its spec is inside it, so "no spec.json" misled).
    """
    if not model_path.is_file():  # report of a run whose model.keras was removed
        raise FileNotFoundError(f"no {model_path.name} in {model_path.parent}")
    with open(model_path, "rb") as f:
        if is_tflite(f.read(8)):
            raise ValueError(
                f"{model_path} is a TFLite model, already converted: this takes the Keras model "
                "(.keras, spec.json beside it). Score a .tflite with `edgefer classify DIR -r -o "
                "out.csv --model MODEL` and `python -m train evaluate-csv out.csv`, or with "
                "`python -m train robustness DIR --model MODEL`"
            )
    spec_path = model_path.with_name("spec.json")
    if not spec_path.exists():
        raise FileNotFoundError(f"no spec.json beside {model_path}")
    spec = ModelSpec.from_json(spec_path.read_text())
    return keras.models.load_model(model_path, compile=False), spec


def predict(model: keras.Model, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Softmax probabilities; with ``tta`` the mean over the image and its mirror image."""
    return predict_probs(model, x, tta)


def evaluate_split(
    model: keras.Model,
    split: Split,
    labels: tuple[str, ...],
    out: Path,
    tta: bool = False,
    title: str = "",
) -> dict[str, Any]:
    """Metrics for one split, written as ``metrics.json`` + PNGs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    probs = predict(model, split.x, tta)
    metrics = summarize(split.y, probs.argmax(1), labels)
    metrics["loss"] = log_loss(split.y, probs)
    metrics["tta"] = tta
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(np.asarray(metrics["confusion_matrix"]), labels, out / "confusion.png", title)
    plot_samples(split.x, split.y, probs, labels, out / "samples.png")
    return metrics


def load_labelled(data_dir: Path, spec: ModelSpec) -> Split:
    """``data_dir/<label>/*`` decoded as ``spec`` says; warns on stderr about skipped images
    and about folders that are not the model's labels.

    Raises:
        ValueError: no images for the model's labels.
    """
    split = load_folder(data_dir, spec.labels, spec.input_size, spec.channels, Path("runs/cache"))
    if not len(split):
        raise ValueError(
            f"no images under {data_dir}/<label>/ for labels {', '.join(spec.labels)}"
            + splits_hint(data_dir, spec.labels)
        )
    if split.skipped:
        print(f"warning: {split.describe_skipped()}", file=sys.stderr)
    others = sorted(set(list_labels(data_dir)) - set(spec.labels))
    if others:  # "Sad" beside a model's "sad": its images are not scored, say so
        print(
            f"warning: folders in {data_dir} that are not the model's labels, not scored: "
            f"{', '.join(others)}",
            file=sys.stderr,
        )
    return split


def evaluate_dir(model_path: Path, data_dir: Path, out: Path, tta: bool = False) -> dict[str, Any]:
    """Decode ``data_dir/<label>/*`` as the model's spec says and evaluate the model on it."""
    model, spec = load_model_and_spec(model_path)
    split = load_labelled(data_dir, spec)
    name = f"{spec.name} on {data_dir.name}" + (" (flip TTA)" if tta else "")
    metrics = evaluate_split(model, split, spec.labels, out, tta, name)
    metrics["model"] = str(model_path)
    metrics["data"] = str(data_dir)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


__all__ = [
    "evaluate_dir",
    "evaluate_split",
    "format_report",
    "load_labelled",
    "load_model_and_spec",
    "predict",
]

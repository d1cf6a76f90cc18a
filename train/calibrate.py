"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): one scalar
T, fitted on labelled held-out images, so that softmax(z / T) gives confidences that match how
often the model is right; folded into the last Dense layer, so the device runs the same graph.

Why: a student distilled from softened teacher targets (``fit --teacher-temperature 2``) learns
those softened probabilities. ``edge-kd5`` on FER2013 val was right on 0.685 of the images with
a mean confidence of 0.571 (expected calibration error 0.114), so `edgefer classify`'s
confidences and its low-confidence count said less than they should. T changes no argmax:
accuracy, macro-F1 and every recall stay as they were.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from train.evaluate import load_labelled, load_model_and_spec
from train.fit import float32_copy, save_inference_model
from train.metrics import predict_probs
from train.tfenv import keras

#: Temperatures searched (a softened student needs about 0.5-0.7; a sure model above 1).
T_RANGE = (0.05, 20.0)


def softmax_head(model: keras.Model) -> keras.layers.Dense:
    """The model's last layer, which must be a Dense layer with a softmax.

    Raises:
        ValueError: it is not (a folded ensemble ends in an average, for example).
    """
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.get_config()["activation"] != "softmax":
        raise ValueError(
            f"the last layer ({head.name}) is not a Dense layer with a softmax: "
            "no temperature can be folded into it"
        )
    return head


def logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The inputs to the final softmax, in float64."""
    head = softmax_head(model)
    features = predict_probs(keras.Model(model.inputs, head.input), x)
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_weights())
    return np.asarray(features, np.float64) @ kernel + bias


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of the labels ``y`` under softmax(z / t)."""
    return float(-log_softmax(z / t)[np.arange(len(y)), y].mean())


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The T in :data:`T_RANGE` that minimises :func:`nll` (convex in 1/T: golden-section
    search on log T)."""
    lo, hi = (math.log(t) for t in T_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(z, y, math.exp(a)), nll(z, y, math.exp(b))
    while hi - lo > 1e-5:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(z, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for k in range(bins):
        mask = which == k
        if mask.any():
            error += mask.mean() * abs(right[mask].mean() - confidence[mask].mean())
    return float(error)


def scores(z: np.ndarray, y: np.ndarray, t: float) -> dict[str, float]:
    probs = np.exp(log_softmax(z / t))
    return {
        "nll": round(nll(z, y, t), 4),
        "ece": round(expected_calibration_error(probs, y), 4),
        "mean_confidence": round(float(probs.max(axis=1).mean()), 4),
        "accuracy": round(float((probs.argmax(axis=1) == y).mean()), 4),
    }


def cross_checked(z: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Fit T on one random half, score the other half, and the other way round: what the
    scores are worth on images the temperature was not fitted to."""
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    results = []
    for fit_on, score_on in (halves, halves[::-1]):
        t = fit_temperature(z[fit_on], y[fit_on])
        results.append(
            {
                "temperature": round(t, 4),
                "before": scores(z[score_on], y[score_on], 1.0),
                "after": scores(z[score_on], y[score_on], t),
            }
        )
    return {"halves": results}


def with_temperature(model: keras.Model, t: float) -> keras.Model:
    """A float32 copy of ``model`` whose final softmax sees its logits divided by ``t``."""
    scaled = float32_copy(model)
    head = softmax_head(scaled)
    kernel, bias = head.get_weights()
    head.set_weights([kernel / t, bias / t])
    return scaled


def calibrate(model_path: Path, data_dir: Path, out: Path) -> dict[str, Any]:
    """Fit a temperature for the model at ``model_path`` (with its spec.json) on the labelled
    folders in ``data_dir`` and save the scaled model to ``out/model.keras`` + ``spec.json``;
    returns (and writes to ``out/calibration.json``) the temperature and the scores.

    Raises:
        FileNotFoundError: no spec.json beside the model.
        ValueError: no images for the model's labels, or a model without a softmax Dense head.
    """
    model, spec = load_model_and_spec(model_path)
    split = load_labelled(data_dir, spec)
    z = logits(model, split.x)
    t = fit_temperature(z, split.y)
    scaled = with_temperature(model, t)
    summary = {
        "model": str(model_path),
        "data": str(data_dir),
        "images": len(split),
        "temperature": round(t, 4),
        "before": scores(z, split.y, 1.0),
        "after": scores(z, split.y, t),
        "cross_check": cross_checked(z, split.y),
    }
    # The spec's temperature is the one folded into the layer, which from-tflite undoes: a model
    # calibrated before (its spec has one) now holds both, so record their product.
    folded = float(spec.metadata.get("temperature", 1.0)) * t
    metadata = {**spec.metadata, "temperature": round(folded, 4)}
    metadata["temperature_fitted_on"] = str(data_dir)  # apart from convert's calibration_data
    out.mkdir(parents=True, exist_ok=True)
    save_inference_model(scaled, out, replace(spec, metadata=metadata))
    (out / "calibration.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

"""Classification metrics from integer label arrays. Pure numpy: no TensorFlow import."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class i predicted as j."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0 where the denominator is 0 (a class never predicted / never present), as sklearn does.
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support for each class of a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    precision = _ratio(tp, cm.sum(axis=0).astype(np.float64))
    recall = _ratio(tp, cm.sum(axis=1).astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in y_true."""
    stats = per_class(cm)
    present = stats["support"] > 0
    return float(stats["f1"][present].mean()) if present.any() else 0.0


def summarize(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Everything metrics.json holds: accuracy, macro-F1, per-class stats, confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    stats = per_class(cm)
    return {
        "n": int(cm.sum()),
        "accuracy": accuracy(cm),
        "macro_f1": macro_f1(cm),
        "per_class": {
            label: {
                "precision": float(stats["precision"][i]),
                "recall": float(stats["recall"][i]),
                "f1": float(stats["f1"][i]),
                "support": int(stats["support"][i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value of two models on the same images, from the discordant
    counts (images right only for A, only for B): a binomial test of ``only_a`` in
    ``only_a + only_b`` at 1/2."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean cross-entropy of the true class (no label smoothing)."""
    p = probabilities[np.arange(len(y_true)), np.asarray(y_true, dtype=np.int64)]
    return float(-np.log(np.clip(p, eps, 1.0)).mean())


def format_report(metrics: dict[str, Any]) -> str:
    """A plain-text table of per-class precision/recall/F1 under the headline numbers."""
    lines = [
        f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  macro-F1={metrics['macro_f1']:.4f}",
        f"{'label':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}",
    ]
    for label, s in metrics["per_class"].items():
        lines.append(
            f"{label:<12} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>7.3f} "
            f"{s['support']:>8d}"
        )
    return "\n".join(lines)


#: The most bytes of float32 images :func:`predict_probs` gives a model at once.
PREDICT_BYTES = 32 << 20


def predict_probs(model: Any, x: np.ndarray, tta: bool = False, batch: int = 256) -> np.ndarray:
    """A Keras model's outputs for uint8 images ``x``, ``batch`` images at a time (fewer for
    large images: :data:`PREDICT_BYTES`); with ``tta`` the mean over each image and its mirror.

    Each batch is made float32 on its own: a float32 copy of all of ``x`` (and of its mirror)
    is four (eight) times its bytes, over 8 GB for the reference report's 222x222x3 images."""
    per_image = 4 * int(np.prod(x.shape[1:]))
    batch = max(1, min(batch, PREDICT_BYTES // max(per_image, 1)))
    parts = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch].astype(np.float32)
        probs = np.asarray(model.predict_on_batch(chunk))
        if tta:
            mirror = np.ascontiguousarray(chunk[:, :, ::-1])
            probs = (probs + np.asarray(model.predict_on_batch(mirror))) / 2
        parts.append(probs)
    return np.concatenate(parts) if parts else np.zeros((0, *model.output_shape[1:]), np.float32)

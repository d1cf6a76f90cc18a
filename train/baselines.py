"""The reference report's pixel baselines: logistic regression and an MLP (scikit-learn).

Same data, split and de-duplication as the CNNs; pixels scaled to 0..1 and standardised on
train. No TensorFlow here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from train.data import Dataset
from train.metrics import format_report, summarize
from train.plots import plot_confusion
from train.results import format_duration, upsert_row

#: The MLP's hidden layers.
MLP_LAYERS = (512, 256)


class _InPlaceScaler(StandardScaler):
    """StandardScaler(copy=False) whose statistics are gathered a block of rows at a time:
    scikit-learn's one-pass fit subtracts the mean from the whole float32 matrix into a float64
    one (twice the matrix again), so copy=False alone saved nothing at the peak."""

    ROWS = 256

    def __init__(self) -> None:
        super().__init__(copy=False)

    def fit(self, X, y=None, sample_weight=None):  # noqa: N803 - scikit-learn's name
        self._reset()
        for i in range(0, len(X), self.ROWS):
            self.partial_fit(X[i : i + self.ROWS])
        return self


def make_models(seed: int = 0, max_iter: int = 200) -> dict[str, Any]:
    """Unfitted pipelines by name; the MLP stops early on a 10% slice of train."""
    return {
        "logreg": make_pipeline(
            _InPlaceScaler(),
            LogisticRegression(C=0.01, max_iter=max_iter, random_state=seed),
        ),
        "mlp": make_pipeline(
            _InPlaceScaler(),
            MLPClassifier(
                MLP_LAYERS,
                alpha=1e-3,
                early_stopping=True,
                n_iter_no_change=8,
                max_iter=max_iter,
                random_state=seed,
            ),
        ),
    }


def features(x: np.ndarray) -> np.ndarray:
    """Pixels scaled to 0..1, one float32 row per image (the scaler then works in place)."""
    out = x.reshape(len(x), -1).astype(np.float32)
    out /= 255.0
    return out


def memory_needed(n_images: int, shape: tuple[int, ...]) -> int:
    """Bytes the baselines need beyond the decoded images for ``n_images`` train images of
    ``shape``: the larger of the two fits' peaks as measured with scikit-learn 1.9, and a
    margin. logreg: the float32 feature matrix, scaled in place, and lbfgs's ~2.5 KB per
    feature. mlp: the matrix and early stopping's 90/10 copy of it, and ten float32 copies of
    the weights (Adam's moments, gradients, the best epoch's): 75 million at 222x222x3."""
    pixels = int(np.prod(shape))
    values = n_images * pixels
    layers = (pixels, *MLP_LAYERS)
    weights = sum(a * b for a, b in zip(layers[:-1], layers[1:], strict=True)) + MLP_LAYERS[-1] * 16
    return max(4 * values + 2560 * pixels, 9 * values + 48 * weights)


def memory_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_baselines(
    data: Dataset,
    out: Path,
    data_name: str,
    results: Path | None = None,
    seed: int = 0,
    max_iter: int = 200,
    log: Callable[[str], None] = print,
    variant: str = "",
) -> dict[str, dict[str, Any]]:
    """Fit each baseline on train, evaluate on val (and test); metrics.json + confusion PNG each.

    ``variant`` (a label subset, another input size or split) is added to the results rows'
    model names, so that they do not replace the rows of the default baselines on that data.
    """
    train = data.splits["train"]
    h, w, c = train.x.shape[1:]
    summary = {}
    for name, model in make_models(seed, max_iter).items():
        t = time.time()
        model.fit(features(train.x), train.y)
        seconds = time.time() - t
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for split_name, split in data.splits.items():
            if split_name == "train":
                continue
            m = summarize(split.y, model.predict(features(split.x)), data.labels)
            m["train_seconds"] = seconds
            (folder / f"metrics-{split_name}.json").write_text(json.dumps(m, indent=2) + "\n")
            plot_confusion(
                np.asarray(m["confusion_matrix"]),
                data.labels,
                folder / f"confusion-{split_name}.png",
                f"{name} on {split_name}",
            )
            summary[f"{name}-{split_name}"] = m
            log(f"{name} on {split_name} (fit {seconds:.0f}s):\n{format_report(m)}")
        if results is not None:
            val = summary[f"{name}-val"]
            est = model[-1]
            weights = list(getattr(est, "coefs_", [])) or [est.coef_]
            biases = list(getattr(est, "intercepts_", [])) or [est.intercept_]
            n_params = sum(a.size for a in (*weights, *biases))
            upsert_row(
                results,
                {
                    "model": f"baseline-{name}" + (f" ({variant})" if variant else ""),
                    "arch": name,
                    "data": data_name,
                    "split": f"{data.protocol} (val)",
                    "input": f"{h}x{w}x{c}",
                    "params": int(n_params),
                    "mflops": f"{2 * sum(a.size for a in weights) / 1e6:.2f}",
                    "accuracy": val["accuracy"],
                    "macro_f1": val["macro_f1"],
                    "train_time": format_duration(seconds),
                },
            )
    return summary

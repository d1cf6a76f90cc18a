"""PNG figures: normalised confusion matrix, training curves, a grid of sample predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a headless workstation or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(cm: np.ndarray, labels: tuple[str, ...], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (each true class sums to 1), counts in small print."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Accuracy and loss per epoch, train and val. Train numbers are on augmented batches."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, [r[key] for r in history], label=f"train {key} (augmented)")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], label=f"val {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_samples(
    x: np.ndarray,
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: tuple[str, ...],
    path: Path,
    n: int = 24,
    seed: int = 0,
) -> Path:
    """A grid of random images with the true label, the prediction and its probability."""
    pick = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    cols = 6
    rows = max(1, -(-len(pick) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick, strict=False):
        image = x[i][..., 0] if x.shape[-1] == 1 else x[i]
        ax.imshow(image, cmap="gray" if x.shape[-1] == 1 else None, vmin=0, vmax=255)
        pred = int(probs[i].argmax())
        ok = pred == int(y_true[i])
        ax.set_title(
            f"{labels[pred]} {probs[i, pred]:.2f}\ntrue {labels[int(y_true[i])]}",
            fontsize=8,
            color="green" if ok else "red",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

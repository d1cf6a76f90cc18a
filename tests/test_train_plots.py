"""Plots are written as non-empty PNGs from plain arrays (no model needed)."""

import numpy as np
from PIL import Image

from train.plots import plot_confusion, plot_curves, plot_samples

LABELS = ("a", "b", "c")


def is_png(path, min_bytes=3000):
    with Image.open(path) as im:
        return im.format == "PNG" and path.stat().st_size > min_bytes


def test_confusion_with_an_empty_row(tmp_path):
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 3]])
    assert is_png(plot_confusion(cm, LABELS, tmp_path / "cm.png"))


def test_curves(tmp_path):
    history = [
        {
            "epoch": e,
            "accuracy": 0.1 * e,
            "val_accuracy": 0.09 * e,
            "loss": 2 - 0.1 * e,
            "val_loss": 2 - 0.08 * e,
        }
        for e in range(1, 6)
    ]
    assert is_png(plot_curves(history, tmp_path / "curves.png"))


def test_samples_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 10)
    y = rng.integers(0, 3, 10)
    for c in (1, 3):
        x = rng.integers(0, 256, (10, 16, 16, c), dtype=np.uint8)
        assert is_png(plot_samples(x, y, probs, LABELS, tmp_path / f"s{c}.png", n=8))

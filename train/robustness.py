"""How a converted model holds up on images unlike its validation set's.

A camera on a Pi adds what FER2013's web crops rarely have: blur, sensor noise, JPEG
compression, under- and over-exposure, a mirrored selfie view, a face framed a little off, or
a face only a few dozen pixels wide. Each condition below is applied to every image after the
device decoder (:func:`edgefer.preprocess.load_image`) has made it the model's input size, and
the int8 model is run on the result in the edge runtime, as ``edgefer classify`` runs it. No
TensorFlow here.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from edgefer.classifier import Classifier
from train.data import decode_all, list_images, splits_hint
from train.metrics import mcnemar_p, summarize

Perturb = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Condition:
    name: str
    what: str
    apply: Perturb


def _blur(radius: float) -> Perturb:
    return lambda im, rng: im.filter(ImageFilter.GaussianBlur(radius))


def _noise(sigma: float) -> Perturb:
    def apply(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(im, dtype=np.float32)
        noisy = np.rint(a + rng.normal(0.0, sigma, a.shape))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), im.mode)

    return apply


def _jpeg(quality: int) -> Perturb:
    def apply(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert(im.mode)

    return apply


def _brightness(factor: float) -> Perturb:
    return lambda im, rng: ImageEnhance.Brightness(im).enhance(factor)


def _contrast(factor: float) -> Perturb:
    return lambda im, rng: ImageEnhance.Contrast(im).enhance(factor)


def _mirror(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _edge_padded(im: Image.Image, pad: int) -> np.ndarray:
    """The image as an (h, w, c) array with ``pad`` pixels of its border repeated around it."""
    a = np.asarray(im).reshape(im.height, im.width, -1)
    return np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def _from_array(a: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(a[..., 0] if mode == "L" else a, mode)


def _shift(fraction: float) -> Perturb:
    """The crop moved diagonally by ``fraction`` of its side, each image its own direction;
    what comes in at the border is the border repeated (no black bars a detector would not make)."""

    def apply(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        step = max(1, round(fraction * min(im.size)))
        dy, dx = rng.choice((-step, step), size=2)
        a = _edge_padded(im, step)
        top, left = step + dy, step + dx
        return _from_array(a[top : top + im.height, left : left + im.width], im.mode)

    return apply


def _zoom(factor: float) -> Perturb:
    """The crop drawn ``factor`` times closer (> 1: tighter on the face) or further (< 1)."""

    def apply(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        if factor >= 1:
            cw, ch = w / factor, h / factor
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            return im.resize((w, h), Image.Resampling.BILINEAR, box=box)
        pad = round(max(w, h) * (1 / factor - 1) / 2)
        wide = _from_array(_edge_padded(im, pad), im.mode)
        return wide.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)

    return apply


def _low_resolution(scale: float) -> Perturb:
    """A face only ``scale`` times the model's input side in the photo, enlarged to it."""

    def apply(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        small = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        down = im.resize(small, Image.Resampling.BILINEAR, reducing_gap=3.0)
        return down.resize(im.size, Image.Resampling.BILINEAR)

    return apply


CONDITIONS: tuple[Condition, ...] = (
    Condition("clean", "the images as they are", lambda im, rng: im),
    Condition("mirrored", "left and right swapped (a selfie view)", _mirror),
    Condition("blur 0.75", "Gaussian blur, radius 0.75 px", _blur(0.75)),
    Condition("blur 1.5", "Gaussian blur, radius 1.5 px", _blur(1.5)),
    Condition("noise 10", "Gaussian noise, sigma 10 grey levels", _noise(10)),
    Condition("noise 20", "Gaussian noise, sigma 20 grey levels", _noise(20)),
    Condition("jpeg 50", "JPEG, quality 50", _jpeg(50)),
    Condition("jpeg 20", "JPEG, quality 20", _jpeg(20)),
    Condition("darker", "brightness x0.5 (under-exposed)", _brightness(0.5)),
    Condition("brighter", "brightness x1.5 (over-exposed, clipped)", _brightness(1.5)),
    Condition("low contrast", "contrast x0.5 (haze, a flat light)", _contrast(0.5)),
    Condition("shifted 8%", "crop moved diagonally by 8% of its side", _shift(0.08)),
    Condition("zoomed in", "drawn 1.15x closer: tighter on the face", _zoom(1.15)),
    Condition("zoomed out", "drawn 0.85x as close: more around the face", _zoom(0.85)),
    Condition("half size", "face at half the input side, enlarged", _low_resolution(0.5)),
)


def perturb(x: np.ndarray, condition: Condition, seed: int = 0) -> np.ndarray:
    """``x`` (n, h, w, c) uint8 with ``condition`` applied to each image; the random draws
    (noise, shift directions) depend only on ``seed`` and the condition's name."""
    rng = np.random.default_rng([seed, *condition.name.encode()])
    mode = {1: "L", 3: "RGB"}[x.shape[-1]]
    out = np.empty_like(x)
    for i, image in enumerate(x):
        im = condition.apply(_from_array(image, mode), rng)
        out[i] = np.asarray(im, dtype=np.uint8).reshape(x.shape[1:])
    return out


def measure(
    model: Path,
    data_dir: Path,
    conditions: tuple[Condition, ...] = CONDITIONS,
    threads: int = 2,
    seed: int = 0,
    limit: int | None = None,
    against: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per condition: accuracy, macro-F1, the lowest class recall, the share of images
    whose top-1 label is the one they get clean, and the share of the answers that each label
    gets (``predicted``; a condition can pull most answers toward one label). The labels are
    ``data_dir``'s sub-folders named like the model's labels. With ``against`` (another model
    of the same labels and input), each row also has that model on the very same perturbed
    images: its accuracy, the images right for only one of the two and the McNemar p-value.

    Raises:
        ValueError: no images under ``data_dir/<label>/`` for the model's labels, some that
            cannot be decoded, or an ``against`` model of other labels or input.
    """
    with contextlib.ExitStack() as stack:
        classifier = stack.enter_context(
            Classifier.create_from_model_path(model, num_threads=threads, batch_size=64)
        )
        other = None
        if against is not None:
            other = stack.enter_context(
                Classifier.create_from_model_path(against, num_threads=threads, batch_size=64)
            )
            mine, theirs = classifier.spec, other.spec
            if (mine.labels, mine.input_size, mine.channels) != (
                theirs.labels,
                theirs.input_size,
                theirs.channels,
            ):
                raise ValueError(f"{against}: not the labels and input of {model}")
        x, y = _images(classifier, Path(data_dir), seed, limit)
        clean_top1 = classifier.predict(x).argmax(axis=1)
        clean_accuracy = summarize(y, clean_top1, classifier.labels)["accuracy"]
        rows = []
        for condition in conditions:
            xc = x if condition.name == "clean" else perturb(x, condition, seed)
            top1 = clean_top1 if condition.name == "clean" else classifier.predict(xc).argmax(1)
            row = _row(condition, y, top1, clean_top1, clean_accuracy, classifier.labels)
            if other is not None:
                right, other_right = top1 == y, other.predict(xc).argmax(axis=1) == y
                only_this = int(np.sum(right & ~other_right))
                only_other = int(np.sum(other_right & ~right))
                row["against"] = {
                    "accuracy": float(np.mean(other_right)),
                    "only_this_right": only_this,
                    "only_other_right": only_other,
                    "mcnemar_p": mcnemar_p(only_this, only_other),
                }
            rows.append(row)
        return rows


def _images(
    classifier: Classifier, data_dir: Path, seed: int, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled images under ``data_dir``, decoded for the classifier, and their labels."""
    spec = classifier.spec
    paths, y = list_images(data_dir, classifier.labels)
    if not paths:
        raise ValueError(
            f"no images in {data_dir}/<label>/ for the model's labels "
            f"({', '.join(classifier.labels)})" + splits_hint(data_dir, classifier.labels)
        )
    if limit is not None and limit < len(paths):
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:limit])
        paths, y = [paths[i] for i in keep], y[keep]
    x, failed = decode_all(paths, spec.input_size, spec.channels)
    if failed:
        first = min(failed)
        raise ValueError(f"{len(failed)} images cannot be decoded: {paths[first]}: {failed[first]}")
    return x, y


def _row(
    condition: Condition,
    y: np.ndarray,
    top1: np.ndarray,
    clean_top1: np.ndarray,
    clean_accuracy: float,
    labels: tuple[str, ...],
) -> dict[str, Any]:
    metrics = summarize(y, top1, labels)
    recalls = {k: v["recall"] for k, v in metrics["per_class"].items() if v["support"]}
    lowest = min(recalls, key=recalls.__getitem__)
    # What a failing model says instead: a condition that pulls answers toward one label.
    shares = np.bincount(top1, minlength=len(labels)) / len(top1)
    return {
        "condition": condition.name,
        "what": condition.what,
        "n": metrics["n"],
        "accuracy": metrics["accuracy"],
        "change_points": 100 * (metrics["accuracy"] - clean_accuracy),
        "macro_f1": metrics["macro_f1"],
        "lowest_recall": recalls[lowest],
        "lowest_recall_label": lowest,
        "recall": recalls,
        "same_as_clean": float(np.mean(top1 == clean_top1)),
        "predicted": {label: float(share) for label, share in zip(labels, shares, strict=True)},
        "most_predicted_label": labels[int(np.argmax(shares))],
    }


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain table (change: accuracy points against the clean images); with an
    ``against`` model, its accuracy, the images right only for each and McNemar's p."""
    versus = "against" in rows[0]
    head = (
        f"{'condition':<13} {'accuracy':>8} {'change':>7} {'macro-F1':>8} "
        f"{'lowest recall':>22} {'same top-1':>10} {'most said':>19}"
    )
    if versus:
        head += f" {'other':>8} {'only this':>9} {'only other':>10} {'p':>8}"
    lines = [head]
    for r in rows:
        lowest = f"{r['lowest_recall_label']} {r['lowest_recall']:.3f}"
        most = f"{r['most_predicted_label']} {r['predicted'][r['most_predicted_label']]:.2f}"
        line = (
            f"{r['condition']:<13} {r['accuracy']:>8.4f} {r['change_points']:>+7.2f} "
            f"{r['macro_f1']:>8.4f} {lowest:>22} {r['same_as_clean']:>10.3f} {most:>19}"
        )
        if versus:
            o = r["against"]
            line += (
                f" {o['accuracy']:>8.4f} {o['only_this_right']:>9} {o['only_other_right']:>10}"
                f" {o['mcnemar_p']:>8.2g}"
            )
        lines.append(line)
    lines.append(
        f"n={rows[0]['n']}; change: accuracy points against the clean images; most said: the "
        "label given most often, and its share of the answers"
    )
    if versus:
        lines.append(
            "other: the --against model on the same images; only this / only other: images "
            "right for one model only; p: exact McNemar"
        )
    return "\n".join(lines)

"""Datasets as in-memory arrays: folder discovery, stratified split, decoding, cache, duplicates.

Every pixel is decoded by :func:`edgefer.preprocess.load_image`, the device's own decoder, so
training and inference see identical inputs. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.preprocess import IMAGE_SUFFIXES, load_image

SPLIT_NAMES = ("train", "val", "test")
#: The reference report's protocol for a single folder: 70/15/15, stratified, fixed seed.
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
CACHE_VERSION = 1


@dataclass(frozen=True)
class Split:
    """One split's images: ``x`` uint8 (n, h, w, c), ``y`` int label indices, source paths."""

    x: np.ndarray
    y: np.ndarray
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.x[index], self.y[index], tuple(self.paths[i] for i in index))


@dataclass(frozen=True)
class Dataset:
    """Labels plus named splits (``train``, ``val``, maybe ``test``) and how they were made."""

    labels: tuple[str, ...]
    splits: dict[str, Split]
    protocol: str  # "folders" (given train/val[/test]) or "split 70/15/15 seed N"
    duplicates: dict[str, int]


def list_labels(folder: Path) -> tuple[str, ...]:
    """Sorted names of the non-hidden sub-folders: the label order of every model."""
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != "."))


def list_images(folder: Path, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Sorted image paths under ``folder/<label>/`` and their label indices."""
    paths: list[str] = []
    ys: list[int] = []
    for index, label in enumerate(labels):
        sub = folder / label
        if not sub.is_dir():
            continue
        files = sorted(
            p
            for p in sub.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        paths += [str(p) for p in files]
        ys += [index] * len(files)
    return paths, np.asarray(ys, dtype=np.int64)


def has_split_folders(data_dir: Path) -> bool:
    """True when ``data_dir`` holds ``train/`` and ``val/`` rather than label folders."""
    return (data_dir / "train").is_dir() and (data_dir / "val").is_dir()


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...] = DEFAULT_FRACTIONS, seed: int = 0
) -> list[np.ndarray]:
    """Indices of each part, per class shuffled with ``seed`` and cut by ``fractions``.

    Each class is cut on its own (rounding the boundaries), so every part keeps the class
    proportions; the result depends only on ``y``, ``fractions`` and ``seed``.
    """
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(fractions)[:-1] / np.sum(fractions)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        members = members[rng.permutation(len(members))]
        cuts = np.round(bounds * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def decode_all(
    paths: list[str], size: tuple[int, int], channels: int, workers: int = 8
) -> np.ndarray:
    """All images as one uint8 array; Pillow releases the GIL, so threads overlap the I/O."""
    out = np.empty((len(paths), *size, channels), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = load_image(paths[i], size, channels)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(paths)), chunksize=256))
    return out


def cache_key(folder: Path, labels: tuple[str, ...], size: tuple[int, int], channels: int) -> str:
    """Stable name for a folder decoded at ``size`` x ``channels``."""
    ident = json.dumps(
        [CACHE_VERSION, str(folder.resolve()), list(labels), list(size), channels]
    ).encode()
    return f"{folder.name}-{size[0]}x{size[1]}x{channels}-{hashlib.sha1(ident).hexdigest()[:12]}"


def load_folder(
    folder: Path,
    labels: tuple[str, ...],
    size: tuple[int, int],
    channels: int,
    cache_dir: Path | None = None,
) -> Split:
    """Decode ``folder/<label>/*`` (or read it from the .npz cache when the file list matches)."""
    paths, y = list_images(folder, labels)
    cache = cache_dir / (cache_key(folder, labels, size, channels) + ".npz") if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            if list(z["paths"]) == paths:
                return Split(z["x"], z["y"], tuple(paths))
    x = decode_all(paths, size, channels)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y, paths=np.asarray(paths))
        tmp.replace(cache)
    return Split(x, y, tuple(paths))


def pixel_hashes(x: np.ndarray) -> list[bytes]:
    """One digest per image of its decoded pixels (exact duplicates share a digest)."""
    return [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in x]


def cross_duplicates(train: Split, others: list[Split]) -> tuple[np.ndarray, dict[str, int]]:
    """Train indices whose pixels also occur in another split, and counts for the report.

    Counts: ``train_in_other`` (train images duplicated elsewhere), ``label_conflicts`` (of those,
    ones whose label differs), ``within_train`` (train images repeating an earlier train image).
    """
    other_labels: dict[bytes, int] = {}
    for split in others:
        other_labels.update(zip(pixel_hashes(split.x), split.y.tolist(), strict=True))
    hashes = pixel_hashes(train.x)
    leak = np.asarray([h in other_labels for h in hashes], dtype=bool)
    conflicts = sum(
        1
        for h, y in zip(hashes, train.y.tolist(), strict=True)
        if h in other_labels and other_labels[h] != y
    )
    counts = {
        "train_in_other": int(leak.sum()),
        "label_conflicts": int(conflicts),
        "within_train": len(hashes) - len(set(hashes)),
    }
    return np.flatnonzero(leak), counts


def load_dataset(
    data_dir: Path,
    size: tuple[int, int],
    channels: int,
    classes: tuple[str, ...] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    dedupe: bool = True,
) -> Dataset:
    """Load ``data_dir`` as train/val[/test] folders, or split one labelled folder 70/15/15.

    With ``dedupe``, train images whose pixels also appear in val/test are dropped from train
    (validation stays as published); the counts are kept in ``Dataset.duplicates`` either way.

    Raises:
        ValueError: fewer than two labels, or a ``classes`` name that is not a folder.
    """
    split_folders = has_split_folders(data_dir)
    label_root = data_dir / "train" if split_folders else data_dir
    labels = classes or list_labels(label_root)
    missing = [c for c in labels if not (label_root / c).is_dir()]
    if missing:
        raise ValueError(f"no such class folder in {label_root}: {', '.join(missing)}")
    if len(labels) < 2:
        raise ValueError(f"{label_root} has fewer than two label folders")
    if split_folders:
        names = [n for n in SPLIT_NAMES if (data_dir / n).is_dir()]
        splits = {n: load_folder(data_dir / n, labels, size, channels, cache_dir) for n in names}
        protocol = "folders " + "/".join(names)
    else:
        whole = load_folder(data_dir, labels, size, channels, cache_dir)
        parts = stratified_split(whole.y, DEFAULT_FRACTIONS, seed)
        splits = {n: whole.subset(i) for n, i in zip(SPLIT_NAMES, parts, strict=True)}
        protocol = f"stratified 70/15/15 seed {seed}"
    others = [s for n, s in splits.items() if n != "train"]
    leak, counts = cross_duplicates(splits["train"], others)
    if dedupe and len(leak):
        keep = np.setdiff1d(np.arange(len(splits["train"])), leak)
        splits["train"] = splits["train"].subset(keep)
    counts["dropped_from_train"] = int(len(leak)) if dedupe else 0
    return Dataset(labels, splits, protocol, counts)


def class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y, minlength=n_classes)


def class_weights(y: np.ndarray, n_classes: int, power: float = 0.5) -> np.ndarray:
    """Per-class loss weights ``(mean_count / count) ** power``, rescaled to a mean of 1 per sample.

    ``power=1`` is fully balanced, ``0`` uniform; ``0.5`` (the default) lifts FER's 436 "disgust"
    images about 4x over its 7,215 "happy" without letting 16x weights dominate the gradient.
    """
    counts = np.maximum(class_counts(y, n_classes), 1).astype(np.float64)
    w = (counts.mean() / counts) ** power
    return (w / (w[y].mean())).astype(np.float32)

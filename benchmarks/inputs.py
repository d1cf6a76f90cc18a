"""Benchmark inputs, generated at run time into a temporary folder (never into the repository).

Small inputs are copies of real dataset images; large numbers of files are hard links to a few
hundred of them (same bytes, same decode cost, written in a second); camera-size JPEGs are faces
from the data upscaled onto a textured 1920x1080 frame.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from edgefer.convert import labelled_images
from edgefer.preprocess import IMAGE_SUFFIXES, ImageError, load_image
from edgefer.spec import ModelSpec


def dataset_images(data: Path) -> list[Path]:
    """Every image file under ``data`` (recursively), sorted: the pool inputs are drawn from."""
    return sorted(
        p
        for p in data.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def copy_folder(pool: list[Path], folder: Path, n: int) -> Path:
    """``folder`` with ``n`` images copied from ``pool`` (cycled when it holds fewer)."""
    folder.mkdir(parents=True)
    for i, src in zip(range(n), itertools.cycle(pool), strict=False):
        shutil.copyfile(src, folder / f"{i:05d}{src.suffix.lower()}")
    return folder


def link_folder(distinct: Path, folder: Path, n: int) -> Path:
    """``folder`` with ``n`` hard links cycling over the files in ``distinct`` (copies if the
    filesystem refuses links)."""
    folder.mkdir(parents=True)
    sources = sorted(distinct.iterdir())
    for i, src in zip(range(n), itertools.cycle(sources), strict=False):
        dst = folder / f"{i:05d}{src.suffix}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return folder


def camera_jpegs(pool: list[Path], folder: Path, n: int, distinct: int = 40) -> Path:
    """``n`` 1920x1080 colour JPEGs (quality 90): a face from ``pool`` upscaled to 1000x1000 on
    a smooth colour background, ``distinct`` different ones, the rest hard links."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    made: list[Path] = []
    for i, src in zip(range(min(n, distinct)), pool, strict=False):
        noise = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8)
        frame = Image.fromarray(noise, "RGB").resize((1920, 1080), Image.Resampling.BICUBIC)
        with Image.open(src) as face:
            face = face.convert("RGB").resize((1000, 1000), Image.Resampling.BICUBIC)
        frame.paste(face, (460, 40))
        path = folder / f"cam{i:04d}.jpg"
        frame.save(path, quality=90)
        made.append(path)
    for i in range(len(made), n):
        os.link(made[i % len(made)], folder / f"cam{i:04d}.jpg")
    return folder


def readable(
    paths: list[Path], spec: ModelSpec, n: int | None = None
) -> tuple[list[Path], list[str]]:
    """The first ``n`` (all) of ``paths`` that the device's decoder reads, and what it said of
    each one before them that it cannot read (a corrupt file, HEIC without its plugin): the
    benchmark measures images, and one such file in ``--data`` ended it in a traceback."""
    kept: list[Path] = []
    errors: list[str] = []
    for path in paths:
        if n is not None and len(kept) >= n:
            break
        try:
            load_image(path, spec.input_size, spec.channels)
        except ImageError as exc:
            errors.append(f"{path}: {exc}")
            continue
        kept.append(path)
    return kept, errors


def decode_all(paths: list[Path], spec: ModelSpec) -> np.ndarray:
    """uint8 ``(n, H, W, C)`` through the device's own decoder."""
    return np.stack([load_image(p, spec.input_size, spec.channels) for p in paths])


def labelled_sample(
    directory: Path, labels: tuple[str, ...], per_label: int | None
) -> list[tuple[Path, int]]:
    """``(path, label index)`` from ``directory/<label>/``; at most ``per_label`` of each."""
    items = labelled_images(directory, labels)
    if per_label is None:
        return items
    taken: dict[int, int] = {}
    sample = []
    for path, index in items:
        if taken.get(index, 0) < per_label:
            taken[index] = taken.get(index, 0) + 1
            sample.append((path, index))
    return sample


def readable_sample(
    directory: Path, spec: ModelSpec, per_label: int | None
) -> tuple[list[tuple[Path, int]], list[str]]:
    """:func:`labelled_sample` for ``spec``'s labels, less the files the decoder cannot read
    (and what it said of them)."""
    items = labelled_sample(directory, spec.labels, per_label)
    kept, errors = readable([p for p, _ in items], spec)
    keep = set(kept)
    return [item for item in items if item[0] in keep], errors

"""Whole-photo stand-ins for testing face detection: face crops pasted at known boxes.

Each composite is a textured background (smooth gradients, blobs and stripes, no faces) with
several face crops pasted at random positions and sizes, some rotated in plane. The ground
truth is the pasted square (for a rotated face, the square of the crop's size centred where it
was pasted). Used by tests/test_faces.py and the face section of benchmarks/run.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Truth:
    """One pasted face: box (x, y, w, h) in composite pixels, its label, rotation in degrees."""

    box: tuple[int, int, int, int]
    label: str
    angle: float


def background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A face-free RGB background: a colour gradient with blurred blobs and stripes."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 60 * np.sin(a * xx / width * 3 + b * yy / height * 3 + d * 6)
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(5, 15))):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(max(4, width // 40), max(8, width // 6)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=colour)
        else:
            draw.rectangle((x0 - r, y0 - r // 3, x0 + r, y0 + r // 3), fill=colour)
    return im.filter(ImageFilter.GaussianBlur(radius=max(1, width // 200)))


def _overlaps(box, boxes, gap: float = 0.1) -> bool:
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        g = gap * max(w, bw)
        if x < bx + bw + g and bx < x + w + g and y < by + bh + g and by < y + h + g:
            return True
    return False


def composite(
    rng: np.random.Generator,
    faces: list[tuple[Image.Image, str]],
    size: tuple[int, int] = (960, 720),
    sides: tuple[int, int] = (40, 240),
    max_angle: float = 0.0,
    rotated_share: float = 0.0,
) -> tuple[Image.Image, list[Truth]]:
    """Paste ``faces`` (image, label) into a background of ``size``; returns the RGB composite
    and the truth for the faces that fitted without overlapping another (tries 50 places each).

    Sides are drawn log-uniformly from ``sides``; ``rotated_share`` of the faces are rotated
    by up to ``max_angle`` degrees either way.
    """
    im = background(rng, size)
    truths: list[Truth] = []
    for face, label in faces:
        side = int(np.exp(rng.uniform(np.log(sides[0]), np.log(sides[1]))))
        side = min(side, min(size) - 2)
        angle = 0.0
        if rng.random() < rotated_share:
            angle = float(rng.uniform(-max_angle, max_angle))
        for _ in range(50):
            x = int(rng.integers(0, size[0] - side))
            y = int(rng.integers(0, size[1] - side))
            if not _overlaps((x, y, side, side), [t.box for t in truths]):
                break
        else:
            continue
        patch = face.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        if angle:
            # Rotate with a mask so the background shows in the corners, as in a tilted photo.
            mask = Image.new("L", patch.size, 255).rotate(angle, Image.Resampling.BILINEAR, True)
            patch = patch.rotate(angle, Image.Resampling.BILINEAR, expand=True)
            ox, oy = x + side // 2 - patch.width // 2, y + side // 2 - patch.height // 2
            im.paste(patch, (ox, oy), mask)
        else:
            im.paste(patch, (x, y))
        truths.append(Truth((x, y, side, side), label, angle))
    return im, truths


def load_faces(folder: Path, per_label: int, skip: int = 0) -> list[tuple[Image.Image, str]]:
    """``per_label`` face crops from each label folder of ``folder`` (sorted names, after
    ``skip``, or the first ones of a folder too small to skip any), for composites."""
    out = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        names = sorted(p for p in label_dir.iterdir() if p.is_file())
        names = (
            names[skip : skip + per_label] if len(names) >= skip + per_label else names[:per_label]
        )
        for path in names:
            with Image.open(path) as im:
                out.append((im.convert("L").copy(), label_dir.name))
    return out


def match(truths: list[tuple[int, int, int, int]], boxes: list[tuple[float, ...]], at: float = 0.5):
    """Greedy one-to-one matching by IoU >= ``at``; returns {truth index: box index}."""
    pairs = []
    for i, t in enumerate(truths):
        for j, b in enumerate(boxes):
            v = _iou(t, b)
            if v >= at:
                pairs.append((v, i, j))
    used_t, used_b, out = set(), set(), {}
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_t and j not in used_b:
            used_t.add(i)
            used_b.add(j)
            out[i] = j
    return out


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)

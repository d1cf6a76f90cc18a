"""Face detection for whole photos: find every face, crop it upright, hand it to the classifier.

Two detectors, neither needing TensorFlow:

* ``blazeface`` (default): MediaPipe's BlazeFace short-range model (Apache-2.0, shipped in
  ``edgefer/detectors/``), run on the classifier's TFLite runtime (``classifier.runtime``). It
  sees a 128x128 letterboxed view, so small faces in a large photo are found by also scanning
  overlapping tiles, down to ``min_face`` pixels. Its eye keypoints level each crop.
* ``haar``: OpenCV's frontal-face Haar cascade, from the optional extra ``edgefer[faces]``
  (``opencv-python-headless<5``; 5.x dropped the cascade files).

Boxes are in pixels of the EXIF-corrected image at its full resolution.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

from edgefer._quiet import quiet_fd
from edgefer.preprocess import (
    DEFAULT_MAX_PIXELS,
    JPEG_FORMATS,
    ImageError,
    _convert_mode,
    _describe,
    _may_have_exif,
    opened,
)
from edgefer.runtime import Runtime, default_threads, load_runtime

DETECTOR_DIR = Path(__file__).parent / "detectors"
DETECTORS = ("blazeface", "haar")

#: Longest side of the working copy the detector scans; larger photos are decoded smaller
#: (JPEG draft) and the boxes scaled back to full-size pixels.
WORK_SIDE = 1600

#: Faces smaller than this in the working copy are not sought, whatever ``min_face`` says: too
#: few pixels to classify, and the tiles needed to find them multiply (in a 24 MP photo, faces
#: under 75 px are skipped).
MIN_WORK_FACE = 20

#: Extra share of a face's side added on every side before cropping (the detectors' boxes are
#: already framed like the training crops, see ``FRAME``).
DEFAULT_MARGIN = 0.0


class FaceDetectorMissingError(Exception):
    """The chosen detector cannot be loaded: its optional dependency or its file is missing."""


@dataclass(frozen=True)
class Face:
    """A detected face: box ``(x, y, w, h)`` in image pixels, detector score, eye centres."""

    x: float
    y: float
    w: float
    h: float
    score: float
    right_eye: tuple[float, float] | None = None  # the subject's right eye (image left)
    left_eye: tuple[float, float] | None = None

    def scaled(self, factor: float) -> Face:
        def s(p):
            return None if p is None else (p[0] * factor, p[1] * factor)

        return Face(
            self.x * factor,
            self.y * factor,
            self.w * factor,
            self.h * factor,
            self.score,
            s(self.right_eye),
            s(self.left_eye),
        )

    def shifted(self, dx: float, dy: float) -> Face:
        def s(p):
            return None if p is None else (p[0] + dx, p[1] + dy)

        return Face(
            self.x + dx,
            self.y + dy,
            self.w,
            self.h,
            self.score,
            s(self.right_eye),
            s(self.left_eye),
        )

    def framed(self, scale: float, shift: float) -> Face:
        """The square a detector's box stands for in the classifier's training framing: its
        side ``scale`` times the box's longer side, its centre moved down by ``shift`` box
        heights (negative: up)."""
        side = max(self.w, self.h) * scale
        cx, cy = self.x + self.w / 2, self.y + self.h / 2 + shift * self.h
        return Face(
            cx - side / 2, cy - side / 2, side, side, self.score, self.right_eye, self.left_eye
        )

    def box(self, width: int | None = None, height: int | None = None) -> tuple[int, int, int, int]:
        """The box rounded to whole pixels, as written to the CSV; with the image's size,
        the part of it inside the image."""
        x0, y0, x1, y1 = self.x, self.y, self.x + self.w, self.y + self.h
        if width is not None and height is not None:
            x0, y0 = min(max(x0, 0), width), min(max(y0, 0), height)
            x1, y1 = min(max(x1, 0), width), min(max(y1, 0), height)
        x, y = round(x0), round(y0)
        return x, y, round(x1) - x, round(y1) - y


class FaceDetector(Protocol):
    name: str

    def detect(self, image: Image.Image, min_face: int) -> list[Face]:
        """Faces in an 'RGB' image, best first, boxes in its pixels."""
        ...


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (x, y, w, h) against rows of boxes ``b``."""
    x1 = np.maximum(a[0], b[:, 0])
    y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[1] + a[3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def weighted_nms(faces: list[Face], threshold: float = 0.3) -> list[Face]:
    """MediaPipe's weighted non-maximum suppression: each cluster of boxes overlapping the best
    remaining one by more than ``threshold`` IoU becomes their score-weighted average."""
    if not faces:
        return []
    faces = sorted(faces, key=lambda f: -f.score)
    boxes = np.array([[f.x, f.y, f.w, f.h] for f in faces])
    scores = np.array([f.score for f in faces])
    alive = np.ones(len(faces), bool)
    out = []
    for i in range(len(faces)):
        if not alive[i]:
            continue
        members = np.flatnonzero(alive & (iou(boxes[i], boxes) > threshold))
        alive[members] = False
        wts = scores[members] / scores[members].sum()
        x, y, w, h = (boxes[members] * wts[:, None]).sum(0)
        eyes = [faces[m] for m in members if faces[m].right_eye is not None]
        re = le = None
        if eyes:
            ew = np.array([f.score for f in eyes])
            ew = ew / ew.sum()
            re = tuple(
                np.sum([np.array(f.right_eye) * k for f, k in zip(eyes, ew, strict=True)], 0)
            )
            le = tuple(np.sum([np.array(f.left_eye) * k for f, k in zip(eyes, ew, strict=True)], 0))
        out.append(Face(x, y, w, h, faces[i].score, re, le))
    return out


def _overlap(a: Face, b: Face) -> float:
    """Area of the intersection of two faces' boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(0.0, w) * max(0.0, h)


def drop_contained(faces: list[Face], cover: float = 0.3) -> list[Face]:
    """Drop a face that has ``cover`` of its area inside a larger, surer one: a small tile that
    sees only part of a big face can find a "face" in its eyes or mouth."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.w * f.h):
        area = max(f.w * f.h, 1e-9)
        if not any(g.score > f.score and _overlap(f, g) >= cover * area for g in kept):
            kept.append(f)
    return kept


def _ssd_anchors(size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (N, 2) in 0..1, MediaPipe's SSD layout with fixed-size anchors."""
    centres = []
    for stride, n in zip(strides, per_cell, strict=True):
        cells = math.ceil(size / stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        c = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(c, n, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


class BlazeFace:
    """BlazeFace short-range (128x128) on a LiteRT/tflite-runtime interpreter.

    Args:
        score_threshold: minimum face probability (MediaPipe's default is 0.5).
        num_threads: interpreter threads (default: all usable cores).
        tile_overlap: share of a tile that the next one overlaps, so a face cut by one tile's
            edge is whole in its neighbour.
        runtime: the runtime to run it on (a classifier's ``.runtime``), or a runtime's name as
            for :func:`~edgefer.runtime.load_runtime`; None: ``$EDGEFER_RUNTIME``, else the
            first importable.
        on_view: called after each view :meth:`detect` scans (a 12 MP photo is 2,450 views at
            the default ``--min-face``: 3.9 s on one x86 core, far longer on a small Pi), so
            that a daemon can show it is alive while one photo is searched.
    """

    name = "blazeface"
    INPUT = 128
    # BlazeFace's box is tighter and lower than a FER2013 crop of the same face: measured on
    # FER2013 *train* faces pasted into composites (benchmarks/composites.py), its side is a
    # median 0.88 of the crop's and its centre 0.10 of its height below the crop's centre.
    FRAME = (1 / 0.88, -0.10)
    # A face is found reliably when it spans at least this share of the detector's view.
    MIN_SHARE = 0.25

    def __init__(
        self,
        score_threshold: float = 0.6,
        num_threads: int | None = None,
        tile_overlap: float = 0.5,
        model_path: Path | None = None,
        runtime: Runtime | str | None = None,
        on_view: Callable[[], None] | None = None,
    ) -> None:
        # Checked before the model loads: a threshold above 1 found no face, ever, and an
        # overlap of 1 stepped the tiles one pixel at a time.
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be 0..1, got {score_threshold}")
        if not 0.0 <= tile_overlap < 1.0:
            raise ValueError(f"tile_overlap must be at least 0 and below 1, got {tile_overlap}")
        path = model_path or DETECTOR_DIR / "face_detection_short_range.tflite"
        if not isinstance(runtime, Runtime):
            runtime = load_runtime(runtime)
        try:
            with quiet_fd(2):
                self._interp = runtime.interpreter_class(
                    model_path=str(path), num_threads=num_threads or default_threads()
                )
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise FaceDetectorMissingError(f"cannot load the face detector {path}: {exc}") from exc
        self._in = self._interp.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self._reg, self._cls = outs["regressors"], outs["classificators"]
        # MediaPipe's short-range layout: strides 8, 16, 16, 16 with two anchors each; the
        # three stride-16 layers share cells, giving 16*16*2 + 8*8*6 = 896 anchors.
        self._anchors = _ssd_anchors(self.INPUT, (8, 16), (2, 6))
        self.score_threshold = score_threshold
        self.tile_overlap = tile_overlap
        self._on_view = on_view

    def _detect_square(self, view: Image.Image) -> list[Face]:
        """Faces in one view (any size), letterboxed to the model's square input."""
        side = max(view.size)
        scale = self.INPUT / side
        w, h = max(1, round(view.width * scale)), max(1, round(view.height * scale))
        canvas = Image.new("RGB", (self.INPUT, self.INPUT))
        canvas.paste(view.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0), (0, 0))
        x = np.asarray(canvas, dtype=np.float32)[None] / 127.5 - 1.0
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._cls)[0, :, 0]
        reg = self._interp.get_tensor(self._reg)[0]
        scores = 1 / (1 + np.exp(-np.clip(raw.astype(np.float64), -100, 100)))
        keep = np.flatnonzero(scores >= self.score_threshold)
        faces = []
        for i in keep:
            r, (ax, ay) = reg[i] / self.INPUT, self._anchors[i]
            cx, cy, bw, bh = r[0] + ax, r[1] + ay, r[2], r[3]
            k = 1 / scale * self.INPUT  # normalised units -> view pixels
            faces.append(
                Face(
                    (cx - bw / 2) * k,
                    (cy - bh / 2) * k,
                    bw * k,
                    bh * k,
                    float(scores[i]),
                    ((r[4] + ax) * k, (r[5] + ay) * k),
                    ((r[6] + ax) * k, (r[7] + ay) * k),
                )
            )
        return faces

    def _tiles(self, width: int, height: int, min_face: int) -> list[tuple[int, int, int]]:
        """(x, y, side) of the square views to scan: the whole image, then ever smaller
        overlapping tiles until a ``min_face`` face fills ``MIN_SHARE`` of one."""
        views = [(0, 0, max(width, height))]
        side = max(width, height)
        smallest = max(self.INPUT / 2, min_face / self.FRAME[0] / self.MIN_SHARE)
        # Halve the tile until a min_face face fills MIN_SHARE of it; the last level is cut
        # to exactly that size rather than halved past it.
        while side > smallest * 1.25:
            side = max(round(smallest), side // 2)
            step = max(1, int(side * (1 - self.tile_overlap)))
            xs = list(range(0, max(1, width - side) + 1, step))
            ys = list(range(0, max(1, height - side) + 1, step))
            if xs[-1] + side < width:
                xs.append(width - side)
            if ys[-1] + side < height:
                ys.append(height - side)
            views += [(x, y, side) for y in ys for x in xs]
        return views

    def detect(self, image: Image.Image, min_face: int = 40) -> list[Face]:
        width, height = image.size
        found: list[Face] = []
        for x0, y0, side in self._tiles(width, height, min_face):
            whole = side >= max(width, height)
            view = image if whole else image.crop((x0, y0, x0 + side, y0 + side))
            # A tile smaller than the model's input is upsampled, and blurry texture then
            # passes for a face more easily: ask for a surer score there.
            floor = self.score_threshold + (0.1 if side < self.INPUT else 0.0)
            faces = self._detect_square(view)
            if self._on_view is not None:
                self._on_view()
            for f in faces:
                if f.score < floor:
                    continue
                if not whole:
                    # A face touching an inner tile edge is cut; its neighbour holds it whole.
                    pad = 0.02 * side
                    cut = (
                        (f.x < pad and x0 > 0)
                        or (f.y < pad and y0 > 0)
                        or (f.x + f.w > side - pad and x0 + side < width)
                        or (f.y + f.h > side - pad and y0 + side < height)
                    )
                    if cut:
                        continue
                found.append(f.shifted(x0, y0))
        faces = drop_contained([f.framed(*self.FRAME) for f in weighted_nms(found)])
        return sorted((f for f in faces if f.w >= min_face), key=lambda f: -f.score)

    def close(self) -> None:
        self._interp = None


class HaarCascade:
    """OpenCV's frontal-face Haar cascade (``pip install 'edgefer[faces]'``).

    ``det_score`` is the cascade's level weight (higher is surer; not a probability).
    """

    name = "haar"
    # Its boxes match FER2013's framing (that dataset was cropped with OpenCV): side 0.98 of
    # the crop's, centre offset < 0.01 (same measurement as BlazeFace.FRAME).
    FRAME = (1.0, 0.0)

    def __init__(self, min_neighbors: int = 5, scale_factor: float = 1.1) -> None:
        # OpenCV's own refusal came at the first photo, as a cv2.error of its assertion.
        if not scale_factor > 1.0:
            raise ValueError(f"scale_factor must be above 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        try:
            import cv2
        except ImportError as exc:
            raise FaceDetectorMissingError(
                "the haar detector needs OpenCV: pip install 'edgefer[faces]' "
                "(opencv-python-headless<5)"
            ) from exc
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorMissingError(
                f"OpenCV {cv2.__version__} has no Haar cascade at {path}; "
                "install opencv-python-headless<5"
            )
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor

    def detect(self, image: Image.Image, min_face: int = 40) -> list[Face]:
        grey = np.asarray(image.convert("L"))
        rects, _, weights = self._cascade.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_face, min_face),
            outputRejectLevels=True,
        )
        faces = [
            Face(float(x), float(y), float(w), float(h), float(s)).framed(*self.FRAME)
            for (x, y, w, h), s in zip(np.reshape(rects, (-1, 4)), np.ravel(weights), strict=True)
        ]
        return sorted(faces, key=lambda f: -f.score)

    def close(self) -> None:
        self._cascade = None


def open_detector(
    name: str = "blazeface",
    num_threads: int | None = None,
    runtime: Runtime | str | None = None,
    on_view: Callable[[], None] | None = None,
) -> FaceDetector:
    """The detector ``name``; BlazeFace runs on ``runtime`` and calls ``on_view`` after each
    view it scans (see :class:`BlazeFace`; Haar's one pass takes tens of milliseconds).

    Raises FaceDetectorMissingError when the detector's dependency is missing, ValueError
    for an unknown name."""
    if name == "blazeface":
        return BlazeFace(num_threads=num_threads, runtime=runtime, on_view=on_view)
    if name == "haar":
        return HaarCascade()
    raise ValueError(f"unknown face detector {name!r}; one of {', '.join(DETECTORS)}")


def load_photo(
    source: str | os.PathLike | Image.Image,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    work_side: int = WORK_SIDE,
) -> tuple[Image.Image, float, tuple[int, int]]:
    """Decode a whole photo, EXIF-corrected, as RGB no larger than ``work_side`` (JPEGs are
    decoded reduced); returns it, the factor from its pixels to the full-size image's, and the
    full-size image's (width, height), EXIF-corrected: the bounds of a box in the CSV.

    ``source`` may also be a Pillow image (a camera frame: ``Image.fromarray(frame)``), as for
    :func:`edgefer.preprocess.load_image`: it is left open and unchanged.

    Raises:
        ImageError: as :func:`edgefer.preprocess.load_image`.
    """
    given = isinstance(source, Image.Image)
    im = opened(source, max_pixels)
    try:
        # An app's own image is its to close; one opened here is closed here.
        with contextlib.nullcontext(im) if given else im:
            full_size = im.size
            full = max(im.size)
            if im.format in JPEG_FORMATS and not given:  # draft() would change the app's image
                # The smallest 1/2^k scale whose long side is still >= work_side. (Asking for
                # a work_side square kept a 4:3 photo at full size, its short side being under
                # it at half size: a 12 MP photo took ~120 MB and 4x the decode time.)
                k = min(1.0, work_side / full)
                im.draft("RGB", (math.ceil(im.width * k), math.ceil(im.height * k)))
            im.load()
            loaded = im.size
            if _may_have_exif(im):
                with contextlib.suppress(Exception):
                    im = ImageOps.exif_transpose(im)
            # EXIF turned it a quarter (told before any resizing: the working copy of a
            # 3201x3200 photo is square, which read as a turn and swapped the bounds)
            turned = im.size != loaded
            k = min(1.0, work_side / max(im.size))
            size = (max(1, round(im.width * k)), max(1, round(im.height * k)))
            im = _convert_mode(im, 3, size, reducing_gap=2.0)
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            if im is source:  # an RGB frame small enough: a copy, for the caller to draw on
                im = im.copy()
            im.load()
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(_describe(exc)) from exc
    if turned:
        full_size = (full_size[1], full_size[0])
    return im, full / max(im.size), full_size


def crop_face(
    image: Image.Image,
    face: Face,
    size: tuple[int, int],
    channels: int,
    margin: float = DEFAULT_MARGIN,
    align: bool = True,
) -> np.ndarray:
    """The face as a ``(height, width, channels)`` uint8 model input: a square around the box
    grown by ``margin``, rotated so the eyes are level when the detector gave them."""
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    half = max(face.w, face.h) * (0.5 + margin)
    angle = 0.0
    if align and face.right_eye is not None and face.left_eye is not None:
        (rx, ry), (lx, ly) = sorted([face.right_eye, face.left_eye])  # image-left eye first
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    if abs(angle) > 3.0:
        # Rotate a generous square around the face (so the corners stay filled), then cut.
        big = math.ceil(half * 1.5)
        region = image.crop((round(cx) - big, round(cy) - big, round(cx) + big, round(cy) + big))
        region = region.rotate(angle, Image.Resampling.BILINEAR)
        c = region.width / 2
        crop = region.crop((round(c - half), round(c - half), round(c + half), round(c + half)))
    else:
        crop = image.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    crop = crop.convert("L" if channels == 1 else "RGB")
    height, width = size
    crop = crop.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(crop, dtype=np.uint8).reshape(height, width, channels)


def annotated_name(path: str) -> str:
    """A file name for ``path``'s annotated copy: its parts joined by '__' (at most 150 bytes of
    them), then a hash of the whole path, so that no two paths share a name (``a/b__c.jpg`` and
    ``a/b/c.jpg``, ``p.jpg`` and ``p.png``) and deep paths stay within a file name's 255 bytes."""
    parts = [p for p in Path(path).parts if p not in ("/", "..", ".", "")]
    readable = os.fsencode("__".join(parts) or "image")[:150].decode("utf-8", "ignore")
    readable = readable.lstrip(".") or "image"  # `.snap/p.jpg`: not a hidden copy
    digest = hashlib.sha1(os.fsencode(path)).hexdigest()[:8]
    return f"{readable}.{digest}.jpg"


def annotate(
    path: str,
    boxes: list[tuple[tuple[int, int, int, int], str]],
    out_path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """Write a JPEG copy of the image at ``path`` (at most ``WORK_SIDE`` px) with each
    ``(box, caption)`` drawn; boxes are in full-size pixels.

    Raises:
        ImageError: the image cannot be read again.
        OSError: the copy cannot be written.
    """
    from PIL import ImageDraw, ImageFont

    image, factor, _ = load_photo(path, max_pixels)
    draw = ImageDraw.Draw(image)
    long_side, short_side = max(image.size), min(image.size)
    width = max(1, min(round(long_side / 400), round(short_side / 60)))
    try:  # sized by both sides: a panorama 60 px tall still shows whole captions
        font = ImageFont.load_default(size=max(10, round(min(long_side / 60, short_side / 5))))
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    for (x, y, w, h), caption in boxes:
        x0, y0, x1, y1 = (v / factor for v in (x, y, x + w, y + h))
        draw.rectangle((x0, y0, x1, y1), outline=(255, 220, 0), width=width)
        # Shortened where the image is too narrow: "1: happy 0.93", "1: happy", then "1".
        words = caption.split()
        for n in range(len(words), 0, -1):
            text = " ".join(words[:n]).rstrip(":")
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left + 2 * width, bottom - top + 2 * width
            if tw <= image.width:
                break
        # Above the box, else below it, else inside its top; never past the image's edges.
        if y0 - th >= 0:
            ty = y0 - th
        elif y1 + th <= image.height:
            ty = y1
        else:
            ty = max(0, min(y0, image.height - th))
        tx = max(0, min(x0, image.width - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=(255, 220, 0))
        draw.text((tx + width - left, ty + width - top), text, fill=(0, 0, 0), font=font)
    tmp = Path(out_path).with_name(f".{Path(out_path).name}.tmp")
    try:
        image.save(tmp, "JPEG", quality=90)
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: not a half copy holding its space
            tmp.unlink()
        raise

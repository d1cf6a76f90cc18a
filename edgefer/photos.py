"""Classify whole photos: detect every face, crop it, classify the crops in batches.

Detection and cropping run on the decoding threads (each with its own detector: interpreters
are not thread-safe), the classifier on the calling thread, as in :mod:`edgefer.pipeline`.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgefer.faces import (
    DEFAULT_MARGIN,
    DETECTORS,
    MIN_WORK_FACE,
    crop_face,
    load_photo,
    open_detector,
)
from edgefer.pipeline import (
    Result,
    Source,
    check_run,
    decode_ahead,
    decode_or_error,
    default_workers,
    path_of,
    sources,
)
from edgefer.preprocess import DEFAULT_MAX_PIXELS
from edgefer.runtime import Runtime

#: The error cell of an image in which no face was found.
NO_FACE = "no face"

#: The smallest ``min_face`` taken, as by the command line's ``--min-face``: no face under
#: ``MIN_WORK_FACE`` pixels of the detector's working copy is sought anyway, so a value below
#: is a mistake (a negative one was taken).
MIN_FACE = 8


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and cropped.

    Attributes:
        detector: "blazeface" (built in) or "haar" (needs ``edgefer[faces]``).
        min_face: smallest face side, in pixels of the full-size image, that is reported; at
            least ``MIN_FACE`` (8), as ``--min-face``.
        max_faces: at most this many faces per image, the detector's surest first (0: all).
        margin: extra share of the face's side added around it before cropping; above -0.5
            (negative: a tighter crop).
        align: rotate each crop so the eyes are level (BlazeFace gives the eyes).

    Raises:
        TypeError: a field of the wrong type (``min_face="40"``, ``align="no"``).
        ValueError: an unknown detector, or a number out of its range.
    """

    detector: str = "blazeface"
    min_face: int = 40
    max_faces: int = 0
    margin: float = DEFAULT_MARGIN
    align: bool = True

    def __post_init__(self) -> None:
        # Checked when the options are made: FaceOptions(min_face=-1) was taken, and a
        # misspelt detector came out only at the first result of classify_photos.
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; one of {', '.join(DETECTORS)}")
        for name, low in (("min_face", MIN_FACE), ("max_faces", 0)):
            value = getattr(self, name)
            if isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got bool")
            try:
                value = operator.index(value)
            except TypeError:
                raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
            object.__setattr__(self, name, value)
        # numbers.Real: numpy's floats and integers too (a float32 from an app's config array).
        if isinstance(self.margin, bool) or not isinstance(self.margin, numbers.Real):
            raise TypeError(f"margin must be a number, got {type(self.margin).__name__}")
        margin = float(self.margin)
        if not (math.isfinite(margin) and margin > -0.5):
            # -0.5 leaves a crop of no pixels; below, the crop's corners cross.
            raise ValueError(f"margin must be a finite number above -0.5, got {self.margin}")
        object.__setattr__(self, "margin", margin)
        # align="no" (a config file's string) was taken, and aligned every crop.
        if not isinstance(self.align, (bool, np.bool_)):
            raise TypeError(f"align must be a bool, got {type(self.align).__name__}")
        object.__setattr__(self, "align", bool(self.align))


#: One face: its crop, its box in full-size pixels, the detector's score.
Face = tuple[np.ndarray, tuple[int, int, int, int], float]
#: Per image: its faces, or the text of its error.
Found = list[Face] | str


def _find_faces(
    source: Source,
    detector_for_thread: Callable[[], object],
    options: FaceOptions,
    size: tuple[int, int],
    channels: int,
    max_pixels: int,
) -> list[Face]:
    image, factor, full = load_photo(source, max_pixels)
    # The detector sees the working copy; min_face is in full-size pixels (rounded down:
    # a face of min_face full-size pixels must not be missed by rounding).
    min_face = max(MIN_WORK_FACE, math.floor(options.min_face / factor))
    faces = detector_for_thread().detect(image, min_face)
    faces = [f for f in faces if round(f.w * factor) >= options.min_face]  # exact, full size
    if options.max_faces:
        faces = faces[: options.max_faces]
    found = []
    for face in faces:
        crop = crop_face(image, face, size, channels, options.margin, options.align)
        found.append((crop, face.scaled(factor).box(*full), face.score))
    return found


def classify_photos(
    classifier,  # edgefer.classifier.Classifier
    paths: Iterable[str | os.PathLike | Image.Image],
    options: FaceOptions | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_decoded: Callable[[], None] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> Iterator[list[Result]]:
    """For each path (or Pillow image: a camera frame), in order, the results of its faces
    (surest first), or one result whose error is :data:`NO_FACE` or the decoding error.
    ``on_decoded`` is called (on a decoding thread) as each photo's faces are found: results
    come out in groups of up to eight photos (twice ``workers``, when more than four), which
    take seconds each on a Pi, and a daemon must show it is alive meanwhile. ``on_progress`` is
    called (on a decoding thread) while a photo is searched, after each view BlazeFace scans:
    a 12 MP photo is 2,450 views, 3.9 s on one x86 core, and on a small Pi one photo can
    outlast a systemd watchdog. BlazeFace runs on the classifier's TFLite runtime
    (``classifier.runtime``).

    Raises (by this call, before the first result):
        FaceDetectorMissingError: the detector's optional dependency is missing.
        TypeError: ``options`` is not a :class:`FaceOptions`, ``paths`` is one path.
        ValueError, TypeError: ``workers`` or ``max_pixels`` out of range, as
            :func:`~edgefer.pipeline.classify_paths`.
    """
    options = FaceOptions() if options is None else options
    if not isinstance(options, FaceOptions):
        raise TypeError(f"options must be a FaceOptions, got {type(options).__name__}")
    check_run(workers, max_pixels)
    items = sources(paths)
    # The classifier's runtime: one chosen by ClassifierOptions(runtime=...) was the model's
    # only, and the detector took the first importable one. Opened here to fail early, before
    # any thread.
    runtime = getattr(classifier, "runtime", None)
    open_detector(options.detector, num_threads=1, runtime=runtime).close()
    return _classify_photos(
        classifier, items, options, workers, max_pixels, on_decoded, on_progress, runtime
    )


def _classify_photos(
    classifier,
    paths: Iterable[Source],
    options: FaceOptions,
    workers: int | None,
    max_pixels: int,
    on_decoded: Callable[[], None] | None,
    on_progress: Callable[[], None] | None,
    runtime: Runtime | None,
) -> Iterator[list[Result]]:
    spec = classifier.spec
    workers = workers or default_workers()
    local = threading.local()
    detectors = []

    def detector_for_thread():
        if not hasattr(local, "detector"):
            local.detector = open_detector(
                options.detector, num_threads=1, runtime=runtime, on_view=on_progress
            )
            detectors.append(local.detector)
        return local.detector

    def find(source: Source) -> list[Face]:
        return _find_faces(
            source, detector_for_thread, options, spec.input_size, spec.channels, max_pixels
        )

    def decode(source: Source) -> Found:
        found = decode_or_error(find, source)
        if on_decoded is not None:
            on_decoded()
        return found

    batch: list[tuple[Source, Found]] = []
    n_crops = 0

    def flush() -> Iterator[list[Result]]:
        crops = [f[0] for _, found in batch if not isinstance(found, str) for f in found]
        probs = iter(classifier.predict(np.stack(crops)) if crops else ())
        for source, found in batch:
            path = path_of(source)
            if isinstance(found, str):
                yield [Result(path, error=found)]
            elif not found:
                yield [Result(path, error=NO_FACE)]
            else:
                yield [
                    _result(path, i, box, score, next(probs), spec.labels)
                    for i, (_, box, score) in enumerate(found, 1)
                ]
        batch.clear()

    window = max(8, 2 * workers)
    try:
        for path, found in decode_ahead(paths, decode, workers, window):
            batch.append((path, found))
            n_crops += 0 if isinstance(found, str) else len(found)
            if n_crops >= classifier.batch_size or len(batch) >= window:
                yield from flush()
                n_crops = 0
        if batch:
            yield from flush()
    finally:
        for detector in detectors:
            detector.close()


def _result(
    path: str | None,
    number: int,
    box: tuple[int, int, int, int],
    score: float,
    p: np.ndarray,
    labels: tuple[str, ...],
) -> Result:
    best = int(np.argmax(p))
    return Result(
        path,
        labels[best],
        float(p[best]),
        tuple(float(x) for x in p),
        face=number,
        box=box,
        det_score=score,
    )

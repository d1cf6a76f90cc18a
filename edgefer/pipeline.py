"""The batching core: decode on a small thread pool while the interpreter runs, in input order.

Pillow releases the GIL while decoding and the interpreter releases it while invoking, so a few
decoder threads keep the next batch ready while the current one runs. At most ``window`` images
are in flight, so memory stays flat however many files there are.
"""

from __future__ import annotations

import operator
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import numpy as np
from PIL import Image

from edgefer.preprocess import DEFAULT_MAX_PIXELS, ImageError, load_image
from edgefer.runtime import default_threads


@dataclass(frozen=True)
class Result:
    """One input's outcome (or one face's, with face detection): a label with probabilities,
    or an error. ``path`` is the input's path as a ``str`` (a ``Path`` given in comes back as
    its ``str``), None for a Pillow image given in place of a path."""

    path: str | None
    label: str | None = None
    confidence: float | None = None
    probabilities: tuple[float, ...] | None = None
    error: str | None = None
    #: With face detection: the face's number in its image (1 = the detector's surest), its
    #: box ``(x, y, w, h)`` in pixels of the EXIF-corrected image, and the detector's score.
    face: int | None = None
    box: tuple[int, int, int, int] | None = None
    det_score: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Loader = Callable[[str], np.ndarray]
T = TypeVar("T")

#: Paths per decoding task in :func:`classify_paths` (see :func:`decode_ahead`).
CHUNK = 8


def decode_or_error(decode: Callable[[str], T], path: str) -> T | str:
    """``decode(path)``, or the text of that file's error cell if it raises: a file that cannot
    be read, is not an image, or is too large ends its own row, never the run."""
    try:
        return decode(path)
    except ImageError as exc:
        return str(exc)
    except MemoryError:
        return "out of memory while decoding"
    except Exception as exc:  # noqa: BLE001 - one odd file must not end the run
        return f"{type(exc).__name__}: {exc}"[:120]


#: An input of :func:`classify_paths` and :func:`~edgefer.photos.classify_photos`, once
#: checked by :func:`sources`: a path as a ``str``, or a Pillow image (a camera frame).
Source = str | Image.Image


def path_of(source: Source) -> str | None:
    """The ``Result.path`` of an input: its path, None for an image."""
    return source if isinstance(source, str) else None


def sources(paths: Iterable[str | os.PathLike | Image.Image]) -> Iterator[Source]:
    """The inputs, paths turned into ``str`` (Path, bytes) and images passed on, as they are
    read (``paths`` may be endless: a camera's frames).

    Raises:
        TypeError: ``paths`` is one path rather than an iterable of them (at once), or holds
            something else (when that item is reached).
    """
    if isinstance(paths, str | bytes | os.PathLike | Image.Image):
        # A str is iterable: "photo.jpg" was classified as nine files named by its letters.
        raise TypeError(
            f"expected an iterable of paths, got one {type(paths).__name__} (wrap it in a list)"
        )
    return (_source(p) for p in paths)


def _source(item: object) -> Source:
    if isinstance(item, str | Image.Image):  # a Stream (a str) must stay one
        return item
    if isinstance(item, bytes | os.PathLike):
        return os.fsdecode(item)
    raise TypeError(f"expected a path or a Pillow image, got {type(item).__name__}")


def check_run(workers: int | None, max_pixels: int) -> None:
    """Raises TypeError or ValueError for ``workers`` or ``max_pixels`` out of range, when a
    run is asked for rather than when its first result is."""
    for name, value in (("workers", workers), ("max_pixels", max_pixels)):
        if value is None and name == "workers":
            continue
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got bool")
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
        if number < 1:
            raise ValueError(f"{name} must be >= 1, got {number}")


def _results(
    paths: list[Source],
    decoded: list[np.ndarray | str],
    probs: np.ndarray,
    labels: tuple[str, ...],
) -> Iterator[Result]:
    rows = iter(probs)
    for source, item in zip(paths, decoded, strict=True):
        path = path_of(source)
        if isinstance(item, str):
            yield Result(path, error=item)
            continue
        p = next(rows)
        best = int(np.argmax(p))
        yield Result(path, labels[best], float(p[best]), tuple(float(x) for x in p))


def decode_ahead(
    paths: Iterable[str],
    decode: Callable[[str], object],
    workers: int,
    window: int,
    chunk: int = 1,
) -> Iterator[tuple[str, object]]:
    """``(path, decode(path))`` in input order, decoding up to ``window`` paths ahead on a pool
    of ``workers`` threads, ``chunk`` consecutive paths per pool task.

    For small images, one task per image costs more in futures and thread hand-overs than the
    decoding itself; a chunk of several amortises that.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgefer-decode")
    try:
        pending: deque[tuple[list[str], Future]] = deque()
        source = iter(paths)
        in_flight = 0

        def run(group: list[str]) -> list[object]:
            return [decode(path) for path in group]

        def refill() -> None:
            nonlocal in_flight
            while in_flight < window:
                # The last group may be short: never more than ``window`` paths submitted ahead.
                group = list(islice(source, min(chunk, window - in_flight)))
                if not group:
                    return
                pending.append((group, pool.submit(run, group)))
                in_flight += len(group)

        refill()
        while pending:
            group, future = pending.popleft()
            in_flight -= len(group)
            refill()
            yield from zip(group, future.result(), strict=True)
    finally:
        # Ctrl-C, SIGTERM or a consumer that stops early: the decodes not yet started are
        # dropped rather than run first (with large photos that was seconds per queued task).
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Decoding threads: up to four, no more than the cores this process may use (CPU affinity,
    e.g. systemd's CPUAffinity=, as the interpreter's threads)."""
    return min(4, default_threads())


def classify_paths(
    classifier,  # edgefer.classifier.Classifier (not imported: keeps this testable with fakes)
    paths: Iterable[str | os.PathLike | Image.Image],
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    loader: Loader | None = None,
) -> Iterator[Result]:
    """Classify image files (or Pillow images), yielding one :class:`Result` per input in the
    order given. Files are decoded on ``workers`` threads (None: up to four).

    Decoding errors become error results; exceptions from the classifier itself propagate.

    Raises:
        TypeError: ``paths`` is one path, not an iterable of them; ``workers`` or
            ``max_pixels`` is not an int. Raised by this call, before the first result.
        ValueError: ``workers`` or ``max_pixels`` is below 1 (also by this call).
    """
    check_run(workers, max_pixels)
    return _classify_paths(classifier, sources(paths), workers, max_pixels, loader)


def _classify_paths(
    classifier,
    paths: Iterable[Source],
    workers: int | None,
    max_pixels: int,
    loader: Loader | None,
) -> Iterator[Result]:
    spec = classifier.spec
    if loader is None:

        def loader(path: Source) -> np.ndarray:
            return load_image(path, spec.input_size, spec.channels, max_pixels)

    batch_size = classifier.batch_size
    workers = workers or default_workers()
    chunk = max(1, min(CHUNK, batch_size))
    window = max(2 * batch_size, 2 * workers * chunk)
    batch_paths: list[Source] = []
    batch_items: list[np.ndarray | str] = []

    def flush() -> Iterator[Result]:
        images = [x for x in batch_items if not isinstance(x, str)]
        if images:
            probs = classifier.predict(np.stack(images))
        else:
            probs = np.empty((0, len(spec.labels)), dtype=np.float32)
        yield from _results(batch_paths, batch_items, probs, spec.labels)
        batch_paths.clear()
        batch_items.clear()

    n_images = 0
    decoded = decode_ahead(paths, lambda p: decode_or_error(loader, p), workers, window, chunk)
    for path, item in decoded:
        batch_paths.append(path)
        batch_items.append(item)
        n_images += not isinstance(item, str)
        # Error rows are flushed too, so a run of bad files does not pile up unreported.
        if n_images == batch_size or len(batch_paths) >= window:
            yield from flush()
            n_images = 0
    if batch_paths:
        yield from flush()

"""The batching core: decode on a small thread pool while the interpreter runs, in input order.

Pillow releases the GIL while decoding and the interpreter releases it while invoking, so a few
decoder threads keep the next batch ready while the current one runs. At most ``window`` images
are in flight, so memory stays flat however many files there are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import numpy as np

from edgefer.preprocess import DEFAULT_MAX_PIXELS, ImageError, load_image
from edgefer.runtime import default_threads


@dataclass(frozen=True)
class Result:
    """One input file's outcome (or one face's, with face detection): a label with
    probabilities, or an error."""

    path: str
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


def _results(
    paths: list[str], decoded: list[np.ndarray | str], probs: np.ndarray, labels: tuple[str, ...]
) -> Iterator[Result]:
    rows = iter(probs)
    for path, item in zip(paths, decoded, strict=True):
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
    paths: Iterable[str],
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    loader: Loader | None = None,
) -> Iterator[Result]:
    """Classify image files, yielding one :class:`Result` per path in the order given.

    Decoding errors become error results; exceptions from the classifier itself propagate.
    """
    spec = classifier.spec
    if loader is None:

        def loader(path: str) -> np.ndarray:
            return load_image(path, spec.input_size, spec.channels, max_pixels)

    batch_size = classifier.batch_size
    workers = workers or default_workers()
    chunk = max(1, min(CHUNK, batch_size))
    window = max(2 * batch_size, 2 * workers * chunk)
    batch_paths: list[str] = []
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

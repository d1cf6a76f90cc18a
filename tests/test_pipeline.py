"""The batching core: decoding ahead in order, bounded, with errors as rows."""

from __future__ import annotations

import os
import threading
import time
import types

import numpy as np
import pytest

from edgefer.pipeline import classify_paths, decode_ahead
from edgefer.preprocess import ImageError


@pytest.mark.parametrize(("workers", "window", "chunk"), [(1, 4, 1), (3, 10, 4), (4, 64, 8)])
def test_decode_ahead_keeps_order_and_its_window(workers, window, chunk):
    started = []
    lock = threading.Lock()
    consumed = 0
    ahead = []

    def decode(path: str) -> str:
        with lock:
            started.append(path)
            ahead.append(len(started) - consumed)
        time.sleep(0.0005 * (int(path) % 3))  # uneven work: later tasks may finish first
        return path.upper() + "!"

    paths = [str(i) for i in range(97)]
    out = []
    for path, item in decode_ahead(paths, decode, workers, window, chunk):
        out.append((path, item))
        consumed += 1
    assert out == [(p, p.upper() + "!") for p in paths]
    # Never more than the window (plus the chunk being handed over) started but not consumed.
    assert max(ahead) <= window + chunk


class FakeClassifier:
    """Labels an 'image' by its first pixel; records batch sizes."""

    class spec:  # noqa: N801 - mimics the Classifier attribute
        input_size = (2, 2)
        channels = 1
        labels = ("even", "odd")

    batch_size = 4

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        self.batches.append(len(pixels))
        odd = pixels[:, 0, 0, 0] % 2
        return np.stack([1.0 - odd, odd.astype(float)], axis=1)


def test_classify_paths_in_order_with_error_rows():
    def loader(path: str) -> np.ndarray:
        if path.startswith("bad"):
            raise ImageError("not an image or unsupported format")
        return np.full((2, 2, 1), int(path), np.uint8)

    paths = [str(i) if i % 5 else f"bad{i}" for i in range(1, 40)]
    clf = FakeClassifier()
    results = list(classify_paths(clf, paths, workers=3, loader=loader))
    assert [r.path for r in results] == paths
    for r in results:
        if r.path.startswith("bad"):
            assert r.error == "not an image or unsupported format" and r.label is None
        else:
            assert r.label == ("odd" if int(r.path) % 2 else "even") and r.confidence == 1.0
    assert max(clf.batches) <= clf.batch_size
    assert sum(clf.batches) == sum(not p.startswith("bad") for p in paths)


def test_decoding_threads_stay_within_the_cores_this_process_may_use(monkeypatch):
    # With CPUAffinity=0 (one core of a Pi's four), files and photos were decoded on four
    # threads (os.cpu_count()) where the interpreter, through default_threads, used one.
    import edgefer.photos
    import edgefer.pipeline

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    seen = []

    def record(paths, decode, workers, *args, **kwargs):
        seen.append(workers)
        return iter(())

    monkeypatch.setattr(edgefer.pipeline, "decode_ahead", record)
    monkeypatch.setattr(edgefer.photos, "decode_ahead", record)
    monkeypatch.setattr(
        edgefer.photos, "open_detector", lambda *a, **k: types.SimpleNamespace(close=lambda: None)
    )
    list(classify_paths(FakeClassifier(), ["1"], loader=lambda p: None))
    list(edgefer.photos.classify_photos(FakeClassifier(), ["1"]))
    assert seen == [1, 1]

"""The things being timed. Each factory does its setup once and returns a callable that runs
the workload once and returns how many images it processed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from harness import Workload
from PIL import Image

from edgefer._quiet import quiet_fd
from edgefer.classifier import Classifier, ClassifierOptions, quantize
from edgefer.cli import app
from edgefer.pipeline import classify_paths
from edgefer.preprocess import load_image, normalize
from edgefer.runtime import load_runtime
from edgefer.spec import ModelSpec, flatbuffer, read_spec


def cli_classify(
    model: Path,
    folder: Path,
    out_csv: Path,
    batch: int = 16,
    threads: int | None = None,
    workers: int | None = None,
) -> Workload:
    """``edgefer classify FOLDER -o CSV -q`` called in-process (start-up is section 4's)."""
    args = ["classify", str(folder), "-o", str(out_csv), "-m", str(model), "-q", "-b", str(batch)]
    if threads:
        args += ["-t", str(threads)]
    if workers:
        args += ["--workers", str(workers)]
    n = len(os.listdir(folder))

    def run() -> int:
        code = app(args, standalone_mode=False)
        if code not in (0, None):
            raise RuntimeError(f"edgefer {' '.join(args)} exited {code}")
        return n

    return run


def bare_invoke(model: Path, images: np.ndarray, batch: int, threads: int) -> Workload:
    """The interpreter alone: set_tensor, invoke, get_tensor over pre-decoded, pre-quantised
    batches; the ceiling for anything built on it."""
    blob = model.read_bytes()
    spec = read_spec(blob)
    with quiet_fd(2):
        interpreter = load_runtime().interpreter_class(
            model_content=flatbuffer(blob), num_threads=threads
        )
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    out_index = interpreter.get_output_details()[0]["index"]
    dtype = np.dtype(detail["dtype"])
    x = normalize(images, spec.mean, spec.std)
    if np.issubdtype(dtype, np.integer):
        x = quantize(x, *detail["quantization"], dtype)
    x = x.astype(dtype)
    pad = (-len(x)) % batch
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype)])
    batches = [np.ascontiguousarray(x[i : i + batch]) for i in range(0, len(x), batch)]

    def run() -> int:
        for xb in batches:
            interpreter.set_tensor(detail["index"], xb)
            interpreter.invoke()
            interpreter.get_tensor(out_index)
        return len(images)

    return run


def classifier(model: Path, batch: int = 16, threads: int | None = None) -> Classifier:
    return Classifier(ClassifierOptions(model=model, batch_size=batch, num_threads=threads))


def predict(clf: Classifier, images: np.ndarray) -> Workload:
    """``Classifier.predict`` on pre-decoded uint8 images: normalise, quantise, invoke, scores."""

    def run() -> int:
        clf.predict(images)
        return len(images)

    return run


class _NoInference:
    """Stands in for a Classifier in ``classify_paths``: uniform scores, no interpreter."""

    def __init__(self, spec: ModelSpec, batch_size: int) -> None:
        self.spec = spec
        self.batch_size = batch_size

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        n = len(self.spec.labels)
        return np.full((len(pixels), n), 1.0 / n, dtype=np.float32)


def pipeline_without_inference(paths: list[str], spec: ModelSpec, batch: int = 16) -> Workload:
    """``classify_paths`` with a classifier that does nothing: decoding on the default thread
    pool plus batching and results, no interpreter and no CSV."""
    fake = _NoInference(spec, batch)

    def run() -> int:
        for _ in classify_paths(fake, paths):
            pass
        return len(paths)

    return run


def serial_decode(paths: list[str], spec: ModelSpec) -> Workload:
    """``load_image`` on one thread: the CPU cost of decoding one image."""

    def run() -> int:
        for p in paths:
            load_image(p, spec.input_size, spec.channels)
        return len(paths)

    return run


def naive_load(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
    """What a first version would do: decode every pixel, convert, resize."""
    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).reshape(*size, channels)


def serial_naive_decode(paths: list[str], spec: ModelSpec) -> Workload:
    def run() -> int:
        for p in paths:
            naive_load(p, spec.input_size, spec.channels)
        return len(paths)

    return run


def keras_predict(model, x: np.ndarray, batch: int) -> Workload:
    """Keras ``model.predict`` on normalised float32 inputs (the workstation baseline)."""

    def run() -> int:
        model.predict(x, batch_size=batch, verbose=0)
        return len(x)

    return run

"""Shared fixtures: a tiny but real Keras model, its four TFLite conversions, synthetic images.

The tiny model classifies 16x16 grey images by where a bright patch sits (top half, left half,
centre): learnable in a few epochs, so conversion parity is checked on a model that has learnt
something, not on random weights.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefer.spec import ModelSpec

LABELS = ("top", "left", "center")
SIZE = 16
KINDS = ("none", "float16", "dynamic", "int8")


def synth_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, 16, 16, 1) with labels 0..2 (see module docstring)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    x = rng.uniform(0, 90, (n, SIZE, SIZE, 1))
    for i, c in enumerate(y):
        if c == 0:
            x[i, : SIZE // 2] += 140
        elif c == 1:
            x[i, :, : SIZE // 2] += 140
        else:
            x[i, 4:12, 4:12] += 140
    return np.clip(x, 0, 255).astype(np.uint8), y


def gradient_image(width: int, height: int) -> Image.Image:
    """RGB: red rises left to right, green top to bottom (smooth, so lossy codecs keep it)."""
    x = np.zeros((height, width, 3), np.uint8)
    x[..., 0] = np.linspace(0, 255, width)[None, :]
    x[..., 1] = np.linspace(0, 255, height)[:, None]
    return Image.fromarray(x, "RGB")


def write_dataset(root: Path, n_per_label: int, seed: int) -> Path:
    """``root/<label>/<i>.png`` images from :func:`synth_images`."""
    x, y = synth_images(n_per_label * len(LABELS) * 3, seed)
    for index, label in enumerate(LABELS):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(x[y == index][:n_per_label]):
            Image.fromarray(image[..., 0], "L").save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Rich wraps at $COLUMNS (80 without a terminal): a long checkout or temp path would break
    across table lines and a test looking for it would fail. Narrow-output tests set their own."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def local_zone():
    """Call it with a POSIX TZ ("UTC"; "XYZ-2" is UTC+2) to make that the test's local time
    zone; the one before comes back after the test."""
    before = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def interpreters(monkeypatch) -> list:
    """The TFLite interpreters that classifiers make during the test, in order; each has the
    keyword arguments it was made with as ``.kwargs``. What a command's options reach is only
    seen there: the interpreter does not say how many threads it was given."""
    import dataclasses

    from edgefer import classifier

    made = []
    real_load = classifier.load_runtime

    def load_runtime(*args, **kwargs):
        runtime = real_load(*args, **kwargs)

        class Recording(runtime.interpreter_class):
            def __init__(self, *i_args, **i_kwargs):
                super().__init__(*i_args, **i_kwargs)
                self.kwargs = i_kwargs
                made.append(self)

        return dataclasses.replace(runtime, interpreter_class=Recording)

    monkeypatch.setattr(classifier, "load_runtime", load_runtime)
    return made


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A labelled folder of 3 x 20 synthetic PNGs."""
    return write_dataset(tmp_path_factory.mktemp("data"), 20, seed=1)


@pytest.fixture(scope="session")
def tiny_keras(tmp_path_factory) -> Path:
    """A trained tiny Keras model with ``spec.json`` beside it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    keras = tf.keras
    keras.utils.set_random_seed(0)
    x, y = synth_images(600, seed=0)
    inputs = keras.Input((SIZE, SIZE, 1))
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32), y, epochs=8, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("keras")
    path = folder / "model.keras"
    model.save(path)
    spec = ModelSpec(labels=LABELS, input_size=(SIZE, SIZE), channels=1, name="tiny")
    (folder / "spec.json").write_text(spec.to_json())
    return path


@pytest.fixture(scope="session")
def tiny_models(tiny_keras, tiny_data, tmp_path_factory) -> dict[str, Path]:
    """The tiny model converted four ways: none (float32), float16, dynamic, int8."""
    from edgefer.convert import convert

    folder = tmp_path_factory.mktemp("tflite")
    models = {}
    for kind in KINDS:
        out = folder / f"tiny-{kind}.tflite"
        convert(tiny_keras, out, quantize=kind, calibration_dir=tiny_data)
        models[kind] = out
    return models


@pytest.fixture(scope="session")
def int8_model(tiny_models) -> Path:
    return tiny_models["int8"]


def peak_memory(call: Callable[[], object]) -> tuple[object, int]:
    """``call()``'s result and the most bytes Python (numpy included) held during it, over
    what was held before; tracemalloc, so other processes and TensorFlow's C++ heap do not
    count."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

"""TensorFlow/Keras import with quiet logs and CPU threads set once, before any op runs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf", "restoring", "set_threads"]


def set_threads(intra: int, inter: int) -> None:
    """Cap TF's thread pools; on 2 cores, intra=2 keeps both busy without oversubscribing.

    Must run before TensorFlow executes its first op (later calls raise RuntimeError, ignored:
    the pools are already fixed, which only costs speed).
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        pass


@contextmanager
def restoring(layers: Sequence[Any], attr: str) -> Iterator[Sequence[Any]]:
    """Give back each layer's ``attr`` as it was on entry, however the block changed it (a
    batch-norm's momentum, a dropout's rate), on exit or error."""
    saved = [getattr(layer, attr) for layer in layers]
    try:
        yield layers
    finally:
        for layer, value in zip(layers, saved, strict=True):
            setattr(layer, attr, value)

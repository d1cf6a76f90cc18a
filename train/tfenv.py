"""TensorFlow/Keras import with quiet logs and CPU threads set once, before any op runs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf", "set_threads"]


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

"""Which TFLite interpreter to use: LiteRT first, tflite-runtime as the fallback.

``ai_edge_litert`` has wheels for Python 3.11-3.13 on x86_64/aarch64; ``tflite_runtime`` 2.14
still serves 32-bit Pi OS and Python <= 3.11 with numpy < 2. Chosen at run time, never
TensorFlow: importing it costs seconds on a Pi.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

#: (module holding ``Interpreter``, distribution name), in order of preference.
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


class RuntimeMissingError(Exception):
    """No TFLite runtime can be imported."""


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite runtime."""

    name: str
    version: str
    interpreter_class: Any


def _version(dist: str) -> str:
    from importlib import metadata  # ~17 ms to import: only when a runtime is loaded

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def load_runtime(preferred: str | None = None) -> Runtime:
    """The first importable runtime (or ``preferred``, a distribution name, when given).

    ``EDGEFER_RUNTIME`` in the environment acts as ``preferred``.

    Raises:
        RuntimeMissingError: none of the candidates imports (or the one asked for does not,
            named with where it was asked for: ``$EDGEFER_RUNTIME``).
    """
    asked = f"runtime {preferred!r}"
    if not preferred and os.environ.get("EDGEFER_RUNTIME"):
        preferred = os.environ["EDGEFER_RUNTIME"]
        asked = f"$EDGEFER_RUNTIME={preferred}"  # a service's environment file, say
    preferred = preferred or None
    candidates = [c for c in CANDIDATES if preferred in (None, c[1], c[0].split(".")[0])]
    if not candidates:
        names = ", ".join(c[1] for c in CANDIDATES)
        raise RuntimeMissingError(f"{asked}: unknown runtime; choose one of {names}")
    errors = []
    for module_name, dist in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # also raised when the wheel's numpy ABI does not match
            errors.append(f"{dist}: {exc}")
            continue
        if dist == "tflite-runtime" and _numpy_major() >= 2:
            # It imports, then fails in the first Interpreter() with a SystemError: its wheels
            # were built against numpy 1 (and only ask for "numpy").
            errors.append(f"{dist}: needs numpy < 2 (pip install 'numpy<2')")
            continue
        return Runtime(dist, _version(dist), module.Interpreter)
    if preferred:
        # Not "no TFLite runtime found, install one": the other may be installed and working.
        raise RuntimeMissingError(f"{asked} cannot be used: " + "; ".join(errors))
    # numpy < 2 in the same command: `pip install .` brought numpy 2, and tflite-runtime alone
    # installed beside it only led to the next error ("needs numpy < 2").
    raise RuntimeMissingError(
        "no TFLite runtime found (pip install ai-edge-litert, or on 32-bit Pi OS "
        "pip install 'numpy<2' tflite-runtime); tried " + "; ".join(errors)
    )


def _numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def default_threads() -> int:
    """All cores this process may use (honours CPU affinity, e.g. systemd's CPUAffinity=)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)

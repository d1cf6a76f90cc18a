"""Which TFLite interpreter to use: LiteRT first, tflite-runtime as the fallback, TensorFlow's
own ``tf.lite`` as the last resort.

``ai_edge_litert`` has wheels for Python 3.11-3.14 on x86_64/aarch64; ``tflite_runtime`` 2.14
still serves 32-bit Pi OS and Python <= 3.11 with numpy < 2. TensorFlow is tried only when
neither imports (an Intel Mac, where TensorFlow 2.16 has wheels and neither runtime has), or
when asked for: importing it costs seconds, and more on a Pi.
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edgefer._quiet import quiet_fd

#: (module holding ``Interpreter``, distribution name), in order of preference.
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),  # tf.lite.Interpreter
)


def _answers_to(candidate: tuple[str, str], name: str) -> bool:
    """Whether a runtime of :data:`CANDIDATES` is the one ``name`` asks for: by its
    distribution's name (``ai-edge-litert``) or its top module's (``ai_edge_litert``)."""
    module, dist = candidate
    return name in (dist, module.split(".")[0])


def known_runtime(name: str) -> bool:
    """Whether ``name`` asks for one of :data:`CANDIDATES`."""
    return any(_answers_to(c, name) for c in CANDIDATES)


def runtime_names() -> str:
    """The runtimes one may ask for, by distribution name, in order of preference."""
    return ", ".join(dist for _, dist in CANDIDATES)


class RuntimeMissingError(Exception):
    """No TFLite runtime can be imported."""


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite runtime."""

    name: str
    version: str
    interpreter_class: Any


def _version(dist: str, module_name: str) -> str:
    from importlib import metadata  # ~17 ms to import: only when a runtime is loaded

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        # tensorflow-cpu and tensorflow-macos install the module of another distribution name.
        package = sys.modules.get(module_name.split(".")[0])
        return str(getattr(package, "__version__", "unknown"))


def _import(module_name: str) -> ModuleType:
    """The module; TensorFlow's imported quietly, its deprecation of tf.lite silenced."""
    if not module_name.startswith("tensorflow."):
        return importlib.import_module(module_name)
    # TensorFlow's C++ start-up notes (absl, CPU features) go to fd 2 as it is imported: not
    # to a terminal or journal where they read as errors (as edgefer.convert does).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_fd(2):
        module = importlib.import_module(module_name)
    # Each Interpreter() would warn, in five lines, that tf.lite is deprecated in favour of
    # LiteRT: TensorFlow is used where LiteRT cannot be installed, or when asked for by name.
    warnings.filterwarnings(
        "ignore",
        message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
        category=UserWarning,
        module=r"tensorflow\.lite\.python\.interpreter",
    )
    return module


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
    candidates = [c for c in CANDIDATES if preferred is None or _answers_to(c, preferred)]
    if not candidates:
        raise RuntimeMissingError(f"{asked}: unknown runtime; choose one of {runtime_names()}")
    errors = []
    for module_name, dist in candidates:
        try:
            module = _import(module_name)
        except ImportError as exc:  # also raised when the wheel's numpy ABI does not match
            errors.append(f"{dist}: {exc}")
            continue
        version = _version(dist, module_name)
        if _numpy_major() >= 2 and _built_for_numpy_1(dist, version):
            # It imports, then fails in the first Interpreter() with a SystemError: its wheels
            # were built against numpy 1 (and only ask for "numpy").
            named = dist if dist == "tflite-runtime" else f"{dist} {version}"
            errors.append(f"{named}: needs numpy < 2 (pip install 'numpy<2')")
            continue
        return Runtime(dist, version, module.Interpreter)
    if preferred:
        # Not "no TFLite runtime found, install one": the other may be installed and working.
        raise RuntimeMissingError(f"{asked} cannot be used: " + "; ".join(errors))
    import platform

    hint = install_hint(sys.platform, platform.machine(), *_this_python())
    raise RuntimeMissingError(f"no TFLite runtime found ({hint}); tried " + "; ".join(errors))


def _this_python() -> tuple[tuple[int, int], int]:
    """This interpreter's (major, minor) and pointer width in bits: 32 on 32-bit Pi OS even
    where its 64-bit kernel makes ``platform.machine()`` say ``aarch64``."""
    return sys.version_info[:2], struct.calcsize("P") * 8


def install_hint(
    system: str, machine: str, python: tuple[int, int] = (3, 11), bits: int = 64
) -> str:
    """What to install where no runtime imports, on ``sys.platform`` ``system``,
    ``platform.machine()`` ``machine``, Python ``python`` (major, minor) of ``bits`` bits."""
    if system == "linux" and machine.startswith("armv6"):
        # Pi 1, Zero and Zero W: tflite-runtime's 32-bit ARM wheels are armv7l, which pip does
        # not take on armv6l, and LiteRT has none; piwheels cannot build either (no sdist).
        return (
            "no TFLite runtime has wheels for armv6l (Pi 1, Zero, Zero W): edgefer needs a Pi 2 "
            "or later (32-bit Pi OS 12: pip install 'numpy<2' tflite-runtime) or a Zero 2 W"
        )
    # A 32-bit Python on a 64-bit kernel (32-bit Pi OS on a Pi 4 or 5) sees "aarch64".
    arm32 = system == "linux" and (
        machine.startswith("arm") or (machine == "aarch64" and bits == 32)
    )
    if arm32 and python >= (3, 12):
        # 32-bit Pi OS 13 (Python 3.13): tflite-runtime 2.14's armv7l wheels stop at cp311 and
        # LiteRT has none for 32-bit ARM, so "pip install tflite-runtime" finds nothing.
        return (
            "no TFLite runtime has wheels for 32-bit ARM on Python 3.12 or later "
            "(tflite-runtime's last are for Python 3.11, LiteRT has none): use 64-bit Pi OS, "
            "or 32-bit Pi OS 12 (Python 3.11) and pip install 'numpy<2' tflite-runtime"
        )
    if system == "darwin" and machine == "x86_64":
        # LiteRT stopped at 1.0.1 (cp311 only, numpy 1) on Intel Macs, tflite-runtime never
        # had them; TensorFlow has them up to 2.16 (Python 3.9-3.12). An x86_64 Python on
        # Apple silicon lands here too.
        return (
            "LiteRT's last Intel-Mac wheel is 1.0.1, for Python 3.11: pip install "
            "'ai-edge-litert==1.0.1' 'numpy<2'; on Python 3.12 pip install tensorflow; on "
            "Apple silicon, use an arm64 Python and pip install ai-edge-litert"
        )
    if system == "win32" and machine.lower() == "arm64":
        return (
            "no TFLite runtime has Windows-on-ARM wheels: use an x64 Python (Windows runs it "
            "emulated) and pip install ai-edge-litert"
        )
    # numpy < 2 in the same command: `pip install .` brought numpy 2, and tflite-runtime alone
    # installed beside it only led to the next error ("needs numpy < 2").
    return "pip install ai-edge-litert, or on 32-bit Pi OS pip install 'numpy<2' tflite-runtime"


def _built_for_numpy_1(dist: str, version: str) -> bool:
    """Whether this runtime's wheels need numpy 1: all of tflite-runtime's, and LiteRT's 1.0.x,
    the last for Intel Macs (1.1.2 and later run beside numpy 2)."""
    return dist == "tflite-runtime" or (dist == "ai-edge-litert" and version.startswith("1.0."))


def _numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def default_threads() -> int:
    """All cores this process may use (honours CPU affinity, e.g. systemd's CPUAffinity=)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)

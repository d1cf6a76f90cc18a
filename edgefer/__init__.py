"""edgefer: facial-expression classification on the edge.

Light by design: the command line (:mod:`edgefer.cli`) loads numpy, Pillow, Typer and Rich; a
TFLite runtime is imported when a :class:`~edgefer.classifier.Classifier` is built, TensorFlow
only by ``edgefer convert`` (and as the runtime of last resort, where no TFLite runtime is
installed).

The library's names are here too (``from edgefer import Classifier``), imported on first use:
``import edgefer``, which every command starts with, loads none of them.
"""

import sys

# Not typing's: importing typing (and re, enum) took 10 ms, five times the rest of this module.
# Type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LAZY = {
    "Classifier": "edgefer.classifier",
    "ClassifierOptions": "edgefer.classifier",
    "ModelError": "edgefer.classifier",
    "RuntimeMissingError": "edgefer.runtime",
    "Result": "edgefer.pipeline",
    "classify_paths": "edgefer.pipeline",
    "FaceOptions": "edgefer.photos",
    "classify_photos": "edgefer.photos",
    "ImageError": "edgefer.preprocess",
    "load_image": "edgefer.preprocess",
    "SHIPPED_MODELS": "edgefer.shipped",
}

__all__ = [  # as _LAZY's keys, spelt out for linters and type checkers
    "SHIPPED_MODELS",
    "Classifier",
    "ClassifierOptions",
    "FaceOptions",
    "ImageError",
    "ModelError",
    "Result",
    "RuntimeMissingError",
    "__version__",
    "classify_paths",
    "classify_photos",
    "load_image",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from edgefer.classifier import Classifier, ClassifierOptions, ModelError
    from edgefer.photos import FaceOptions, classify_photos
    from edgefer.pipeline import Result, classify_paths
    from edgefer.preprocess import ImageError, load_image
    from edgefer.runtime import RuntimeMissingError
    from edgefer.shipped import SHIPPED_MODELS


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:  # also how ``from edgefer import cli`` finds a submodule
        raise AttributeError(f"module 'edgefer' has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)  # (importlib: 0.6 ms more)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def main() -> None:
    """Console-script entry point: the command line of :mod:`edgefer.cli`.

    The command's modules take a second or more to load on a Pi (numpy, Pillow, Typer, Rich):
    a Ctrl-C in that time ends the command as one inside it does, with a line and exit 130,
    not with a traceback of the import under way.
    """
    try:
        from edgefer.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    cli_main()

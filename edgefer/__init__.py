"""edgefer: facial-expression classification on the edge.

Light by design: the command line (:mod:`edgefer.cli`) loads numpy, Pillow, Typer and Rich; a
TFLite runtime is imported when a :class:`~edgefer.classifier.Classifier` is built, TensorFlow
only by ``edgefer convert``.
"""

import sys

__version__ = "0.1.0"


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

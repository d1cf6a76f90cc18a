"""Command-line options for the model and its interpreter, shared by ``classify``, ``info`` and
``watch``, and for the images and the CSV they share (Typer only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefer.shipped import SHIPPED_MODELS

ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help=f"A .tflite model, or a shipped one by name ({', '.join(SHIPPED_MODELS)}); default: "
        "$EDGEFER_MODEL, else the shipped default.",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", "-t", min=1, help="Interpreter threads (default: all cores)."),
]
TimeOption = Annotated[
    bool,
    typer.Option(
        "--time",
        help="Add a time column after path: the image file's modification time (for a camera, "
        "when the shot was saved), ISO 8601 in local time with its UTC offset.",
    ),
]
MaxPixelsOption = Annotated[
    int, typer.Option(min=1, help="Refuse images with more pixels (decompression bombs).")
]

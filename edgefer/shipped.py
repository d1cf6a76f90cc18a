"""The models shipped with edgefer and how a model argument (a path, a shipped model's name or
nothing) becomes a file. Standard library only: the CLI's options read it at import time."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "edgefer-fer2013-int8.tflite"

#: The models shipped with edgefer, by the name that ``--model`` and ``$EDGEFER_MODEL`` accept
#: (see models/README.md): the default, and one that holds up better under camera noise, blur
#: and small faces at the same clean accuracy, for twice the file size.
SHIPPED_MODELS = {
    "default": DEFAULT_MODEL_NAME,
    "robust": "edgefer-fer2013-robust-int8.tflite",
}


def shipped_models_dir() -> Path:
    """Where the shipped models are: installed with the package, else the repository's
    ``models/`` (an editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "models", here.parent / "models"):
        if (candidate / DEFAULT_MODEL_NAME).is_file():
            return candidate
    return here / "models"


def model_path(model: str | os.PathLike | None = None) -> Path:
    """The file a model argument names: None means ``$EDGEFER_MODEL``, else the default model;
    a shipped model's name (``robust``) is that model's file unless a file of that name is in
    the working directory (a folder of that name is not a model: a folder of images called
    ``default`` must not stand in for the default model); anything else is a path. Does not
    check that the file exists (reading it does)."""
    if model is None:
        model = os.environ.get("EDGEFER_MODEL") or "default"
    path = Path(model)
    if str(model) in SHIPPED_MODELS and not path.is_file():
        return shipped_models_dir() / SHIPPED_MODELS[str(model)]
    return path


def default_model_path() -> Path:
    """The model used when none is given: ``$EDGEFER_MODEL`` (a path or a shipped model's name),
    else the shipped default."""
    return model_path(None)

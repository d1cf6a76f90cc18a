"""Command-line options for face detection, shared by ``classify`` and ``watch`` (Typer only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FacesOption = Annotated[
    bool,
    typer.Option(
        "--faces",
        help="Whole photos: find every face and write one row per face (columns face, x, y, w, "
        "h, det_score; an image without a face gets one row with error 'no face').",
    ),
]
DetectorOption = Annotated[
    str | None,
    typer.Option(
        help="With --faces: blazeface (built in, the default) or haar, which needs "
        "pip install 'edgefer[faces]' first.",
        show_default=False,
    ),
]
MinFaceOption = Annotated[
    int | None,
    typer.Option(
        min=8,  # edgefer.photos.MIN_FACE (not imported here: this module is Typer only)
        help="With --faces: smallest face side reported, in pixels [default: 40]. Smaller "
        "values find smaller faces but scan more tiles (slower).",
        show_default=False,
    ),
]
MaxFacesOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="With --faces: at most this many faces per image, surest first (0 or unset: all).",
        show_default=False,
    ),
]
AnnotateOption = Annotated[
    Path | None,
    typer.Option(
        file_okay=False,
        help="With --faces: write copies of the images with boxes and labels drawn here.",
    ),
]


def face_options(
    faces: bool,
    detector: str | None,
    min_face: int | None,
    max_faces: int | None,
    annotate: Path | None = None,
):
    """The FaceOptions for these flags (None without --faces).

    Raises:
        ValueError: a face option was given without --faces, or an unknown detector.
    """
    from edgefer.faces import DETECTORS
    from edgefer.photos import FaceOptions

    if not faces:
        given = [
            name
            for name, value in (
                ("--detector", detector),
                ("--min-face", min_face),
                ("--max-faces", max_faces),
                ("--annotate", annotate),
            )
            if value is not None
        ]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ValueError(f"{', '.join(given)} {verb} only with --faces")
        return None
    defaults = FaceOptions()
    detector = detector or defaults.detector
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; one of {', '.join(DETECTORS)}")
    return FaceOptions(
        detector=detector,
        min_face=defaults.min_face if min_face is None else min_face,
        max_faces=max_faces or 0,
    )

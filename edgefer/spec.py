"""The model spec: what a ``.tflite`` needs to say about itself to be used correctly.

It travels inside the model file, following the TFLite-metadata convention of a zip archive
appended to the flatbuffer (stock interpreters read the flatbuffer and ignore trailing bytes):
``labels.txt`` (one label per line, in output order) and ``edgefer.json`` (this spec).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

SPEC_FILE = "edgefer.json"
LABELS_FILE = "labels.txt"
SPEC_VERSION = 1

#: Named input normalisations, ``x = (pixel - mean) / std`` with pixels in 0..255.
NORMALIZATIONS = {
    "0..255": (0.0, 1.0),
    "0..1": (0.0, 255.0),
    "-1..1": (127.5, 127.5),
}


def pixel_range(mean: float, std: float) -> tuple[float, float]:
    """What pixels 0 and 255 become under ``(pixel - mean) / std``."""
    return (0 - mean) / std, (255 - mean) / std


def normalization_hint(
    normalization: str, scale: float, zero_point: int, levels: tuple[int, int], dtype: str
) -> str | None:
    """For a model without a spec whose input is quantized (``scale``, ``zero_point``, its
    integer ``levels`` (lowest, highest), of ``dtype``): a one-line warning when the named
    ``normalization`` puts pixels 0..255 in a small part of the values that input takes, or
    far beyond them, naming the one of :data:`NORMALIZATIONS` that fits; else None.

    The default, 0..1, for an int8 model that takes 0..255 put the pixels into 2 of its 256
    levels: every face got the same confident label, without a word."""
    if not scale:
        return None
    low, high = scale * (levels[0] - zero_point), scale * (levels[1] - zero_point)

    def fit(name: str) -> float:  # how much the two ranges overlap: 1 the same, 0 apart
        a, b = pixel_range(*NORMALIZATIONS[name])
        overlap = max(0.0, min(b, high) - max(a, low))
        return overlap / (max(b, high) - min(a, low))

    best = max(NORMALIZATIONS, key=fit)
    if fit(normalization) >= 0.25 or fit(best) < 0.5:
        return None
    a, b = pixel_range(*NORMALIZATIONS[normalization])
    return (
        f"--normalization {normalization} gives the model {a:.3g}..{b:.3g}, but its {dtype} "
        f"input takes {low:.3g}..{high:.3g} "
        f"(quantization scale {scale:.3g}, zero point {zero_point}): try --normalization {best}"
    )


class SpecError(Exception):
    """A model file whose spec is missing or inconsistent."""


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model and read its output.

    Attributes:
        labels: class names in the order of the model's output vector.
        input_size: ``(height, width)`` the model expects.
        channels: 1 for grey, 3 for RGB.
        mean: per-channel (or one shared) value subtracted from 0..255 pixels.
        std: per-channel (or one shared) divisor applied after ``mean``.
        output: ``"probabilities"`` (softmax inside the model) or ``"logits"``.
        name: short model name, shown by ``edgefer info``.
        metadata: free-form provenance (training data, metrics, converter version...).
    """

    labels: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    output: str = "probabilities"
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "input_size", tuple(int(x) for x in self.input_size))
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        self.validate()

    def validate(self) -> None:
        """Raises SpecError when fields contradict each other."""
        if len(self.labels) < 2:
            raise SpecError("a model spec needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise SpecError("model labels are not unique")
        if any(not x.strip() or "\n" in x for x in self.labels):
            raise SpecError("model labels must be non-empty single-line strings")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise SpecError(f"bad input_size {self.input_size}")
        if self.channels not in (1, 3):
            raise SpecError(f"channels must be 1 or 3, not {self.channels}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise SpecError(f"{name} needs 1 or {self.channels} values")
        if any(s == 0 for s in self.std):
            raise SpecError("std must be non-zero")
        if self.output not in ("probabilities", "logits"):
            raise SpecError(f"output must be 'probabilities' or 'logits', not {self.output!r}")

    @classmethod
    def from_normalization(cls, normalization: str, **kwargs: Any) -> ModelSpec:
        """A spec whose mean/std come from a named range in :data:`NORMALIZATIONS`."""
        if normalization not in NORMALIZATIONS:
            names = ", ".join(NORMALIZATIONS)
            raise SpecError(f"unknown normalisation {normalization!r}; one of {names}")
        mean, std = NORMALIZATIONS[normalization]
        return cls(mean=(mean,), std=(std,), **kwargs)

    def to_json(self) -> str:
        data = asdict(self)
        data["spec_version"] = SPEC_VERSION
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Raises SpecError on malformed JSON or missing fields."""
        try:
            data = json.loads(text)
            version = data.pop("spec_version", SPEC_VERSION)
            if version > SPEC_VERSION:
                raise SpecError(f"spec version {version} is newer than this edgefer supports")
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except SpecError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise SpecError(f"malformed model spec: {exc}") from exc


def _split(blob: bytes) -> tuple[bytes, zipfile.ZipFile | None]:
    """Split a model file into flatbuffer bytes and its appended zip (None when absent)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile:
        return blob, None
    infos = archive.infolist()
    if not infos:
        return blob, None
    # zipfile shifts header offsets by any data before the archive, so the smallest one is
    # where the zip begins and the flatbuffer ends.
    start = min(info.header_offset for info in infos)
    return blob[:start], archive


def read_spec(blob: bytes) -> ModelSpec | None:
    """The spec embedded in a model file's bytes, or None when it carries none.

    Raises:
        SpecError: an embedded spec exists but is malformed or disagrees with labels.txt.
    """
    _, archive = _split(blob)
    if archive is None or SPEC_FILE not in archive.namelist():
        return None
    try:
        spec = ModelSpec.from_json(archive.read(SPEC_FILE).decode("utf-8"))
        if LABELS_FILE in archive.namelist():
            labels = archive.read(LABELS_FILE).decode("utf-8").splitlines()
            if tuple(x for x in labels if x) != spec.labels:
                raise SpecError(f"{LABELS_FILE} and {SPEC_FILE} disagree on the labels")
    except (zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise SpecError(f"corrupt embedded spec: {exc}") from exc
    return spec


def is_tflite(head: bytes) -> bool:
    """Whether bytes that start a file carry the TFLite flatbuffer identifier (``TFL3`` at
    offset 4): 8 bytes are enough to tell a .tflite from a Keras model."""
    return head[4:8] == b"TFL3"


def flatbuffer(blob: bytes) -> bytes:
    """The model's flatbuffer without any appended metadata archive."""
    return _split(blob)[0]


def embed_spec(blob: bytes, spec: ModelSpec) -> bytes:
    """Model bytes with ``spec`` appended (replacing any archive already appended)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(spec.labels) + "\n")
        archive.writestr(SPEC_FILE, spec.to_json() + "\n")
    return flatbuffer(blob) + buf.getvalue()


def read_labels_file(text: str) -> tuple[str, ...]:
    """Labels from a ``labels.txt``: one per line, blank lines ignored."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())

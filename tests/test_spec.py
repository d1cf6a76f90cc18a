import io
import json
import zipfile

import pytest

from edgefer.spec import (
    LABELS_FILE,
    SPEC_FILE,
    ModelSpec,
    SpecError,
    embed_spec,
    flatbuffer,
    read_labels_file,
    read_spec,
)

SPEC = ModelSpec(
    labels=("a", "b", "c"), input_size=(48, 48), channels=1, name="m", metadata={"accuracy": 0.5}
)
FAKE_MODEL = b"TFL3" + bytes(range(256)) * 4


def test_round_trip_through_model_bytes():
    blob = embed_spec(FAKE_MODEL, SPEC)
    assert blob.startswith(FAKE_MODEL)
    spec = read_spec(blob)
    assert spec == SPEC
    assert spec.metadata == {"accuracy": 0.5}
    assert flatbuffer(blob) == FAKE_MODEL


def test_embedding_twice_replaces_the_archive():
    other = ModelSpec(labels=("x", "y"), input_size=(8, 8), channels=3)
    blob = embed_spec(embed_spec(FAKE_MODEL, SPEC), other)
    assert flatbuffer(blob) == FAKE_MODEL
    assert read_spec(blob) == other


def test_bare_model_has_no_spec():
    assert read_spec(FAKE_MODEL) is None
    assert flatbuffer(FAKE_MODEL) == FAKE_MODEL


def test_labels_file_travels_too():
    archive = zipfile.ZipFile(io.BytesIO(embed_spec(FAKE_MODEL, SPEC)))
    assert archive.read(LABELS_FILE).decode().splitlines() == ["a", "b", "c"]
    assert json.loads(archive.read(SPEC_FILE))["labels"] == ["a", "b", "c"]


def _archive(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return FAKE_MODEL + buf.getvalue()


def test_disagreeing_labels_file_is_refused():
    blob = _archive({SPEC_FILE: SPEC.to_json(), LABELS_FILE: "a\nc\nb\n"})
    with pytest.raises(SpecError, match="disagree"):
        read_spec(blob)


def test_malformed_spec_json_is_refused():
    with pytest.raises(SpecError, match="malformed"):
        read_spec(_archive({SPEC_FILE: "{not json"}))


def test_newer_spec_version_is_refused():
    data = json.loads(SPEC.to_json())
    data["spec_version"] = 99
    with pytest.raises(SpecError, match="newer"):
        read_spec(_archive({SPEC_FILE: json.dumps(data)}))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": ("a",)}, "at least two"),
        ({"labels": ("a", "a")}, "unique"),
        ({"labels": ("a", "")}, "non-empty"),
        ({"channels": 2}, "channels"),
        ({"std": (0.0,)}, "non-zero"),
        ({"mean": (1.0, 2.0)}, "mean"),
        ({"output": "scores"}, "output"),
        ({"input_size": (0, 48)}, "input_size"),
    ],
)
def test_inconsistent_specs_are_rejected(kwargs, message):
    fields = {"labels": ("a", "b"), "input_size": (48, 48), "channels": 1, **kwargs}
    with pytest.raises(SpecError, match=message):
        ModelSpec(**fields)


def test_named_normalizations():
    spec = ModelSpec.from_normalization("-1..1", labels=("a", "b"), input_size=(4, 4), channels=3)
    assert spec.mean == (127.5,) and spec.std == (127.5,)
    with pytest.raises(SpecError):
        ModelSpec.from_normalization("0..9", labels=("a", "b"), input_size=(4, 4), channels=3)


def test_read_labels_file_skips_blank_lines():
    assert read_labels_file("happy\n\n sad \n") == ("happy", "sad")

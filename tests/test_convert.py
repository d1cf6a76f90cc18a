import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import KINDS, LABELS, synth_images
from typer.testing import CliRunner

from edgefer.classifier import Classifier
from edgefer.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, app
from edgefer.convert import (
    ConvertError,
    calibration_sample,
    import_tensorflow,
    parity_from_predictions,
)
from edgefer.shipped import SHIPPED_MODELS, shipped_models_dir
from edgefer.spec import ModelSpec, read_spec

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", KINDS)
def test_spec_round_trips_into_every_kind(tiny_models, kind):
    spec = read_spec(tiny_models[kind].read_bytes())
    assert spec.labels == LABELS and spec.input_size == (16, 16) and spec.channels == 1
    assert spec.metadata["quantization"] == kind
    assert spec.metadata["converter"].startswith("tensorflow ")
    if kind == "int8":  # which images set the quantization ranges (not a temperature's data)
        assert spec.metadata["calibration_images"] > 0 and spec.metadata["calibration_data"]
    else:
        assert "calibration_data" not in spec.metadata


def test_int8_is_smallest_float32_largest(tiny_models):
    sizes = {k: p.stat().st_size for k, p in tiny_models.items()}
    assert sizes["int8"] < sizes["none"] and sizes["dynamic"] < sizes["none"]
    assert sizes["float16"] < sizes["none"]


def test_parity_report_matches_a_direct_computation(tmp_path, tiny_keras, tiny_data, monkeypatch):
    import tensorflow as tf

    from edgefer import convert as convert_module
    from edgefer.convert import convert, labelled_images, load_batch

    # Keras sees the images a batch at a time, never all of them as float32 at once (2.4 MB per
    # image at 222x222x3: 5 GB to validate on 1,600).
    monkeypatch.setattr(convert_module, "PARITY_BATCH", 16)
    normalize, batches = convert_module.normalize, []
    monkeypatch.setattr(
        convert_module, "normalize", lambda p, *a: batches.append(len(p)) or normalize(p, *a)
    )

    result = convert(
        tiny_keras,
        tmp_path / "m.tflite",
        "int8",
        calibration_dir=tiny_data,
        validate_dir=tiny_data,
        threads=1,
    )
    parity = result.parity
    items = labelled_images(tiny_data, LABELS)
    pixels, skipped = load_batch([p for p, _ in items], result.spec)
    assert skipped == [] and result.calibration_skipped == parity.skipped == []
    y = np.array([i for _, i in items])
    keras_probs = tf.keras.models.load_model(tiny_keras).predict(
        pixels.astype("float32"), verbose=0
    )
    with Classifier.create_from_model_path(tmp_path / "m.tflite", num_threads=1) as c:
        tflite_probs = c.predict(pixels)
    assert parity.n_images == len(y) == 60 and batches[-4:] == [16, 16, 16, 12]  # after calibration
    assert parity.keras_accuracy == pytest.approx(np.mean(keras_probs.argmax(1) == y))
    assert parity.tflite_accuracy == pytest.approx(np.mean(tflite_probs.argmax(1) == y))
    assert parity.agreement == pytest.approx(
        np.mean(keras_probs.argmax(1) == tflite_probs.argmax(1))
    )
    assert parity.max_abs_diff == pytest.approx(np.abs(keras_probs - tflite_probs).max(), abs=1e-6)
    assert parity.tflite_bytes == (tmp_path / "m.tflite").stat().st_size
    assert parity.keras_bytes == tiny_keras.stat().st_size


def test_parity_from_hand_made_predictions():
    y = np.array([0, 1, 2, 1])
    keras = np.eye(3)[[0, 1, 2, 2]]
    tflite = np.eye(3)[[0, 1, 1, 2]] * 0.9 + 0.1 / 3
    k_acc, t_acc, agree, max_diff = parity_from_predictions(y, keras, tflite)
    assert (k_acc, t_acc, agree) == (0.75, 0.5, 0.75)
    assert max_diff == pytest.approx(1 - 0.1 / 3)  # keras p=1 where tflite gives 0.1/3


def test_cli_convert_prints_parity_and_gates_on_drop(tmp_path, tiny_keras, tiny_data):
    out = tmp_path / "m.tflite"
    args = [
        "convert",
        str(tiny_keras),
        "-o",
        str(out),
        "--quantize",
        "int8",
        "--calibration",
        str(tiny_data),
        "--validate",
        str(tiny_data),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    assert "top-1 agreement" in result.output and "accuracy drop" in result.output
    exists = runner.invoke(app, args)
    assert exists.exit_code == EXIT_USAGE and "--force" in exists.output
    strict = runner.invoke(app, [*args, "--force", "--max-drop", "-1"])
    assert strict.exit_code == EXIT_FAILURES and "quantization-aware" in strict.output


def test_unreadable_calibration_and_validation_images_are_counted(tmp_path, tiny_keras, tiny_data):
    # They were left out without a word: a folder of phone photos without pi-heif calibrated
    # on whatever else it held.
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / LABELS[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (data / LABELS[1] / "empty.jpg").write_bytes(b"")
    args = ["-o", tmp_path / "m.tflite", "--calibration", data, "--validate", data]
    result = _convert(tiny_keras, *args)
    assert result.exit_code == EXIT_OK, result.output
    out = " ".join(result.output.split())
    assert "2 calibration image(s) could not be read, left out:" in out
    assert "2 validation image(s) could not be read, left out:" in out
    assert "broken.png: not an image or unsupported format (and 1 more)" in out
    assert "parity on 60 images" in out
    one = _convert(tiny_keras, *args, "--force", "--calibration-size", "1")
    assert "calibration image(s) could not be read" not in " ".join(one.output.split())


def test_validation_images_in_subfolders_count_and_other_folders_are_refused(
    tmp_path, tiny_keras, tiny_data
):
    # Images in <label>/batch1/ were not seen (training counts them), and a folder named
    # otherwise than a label ("Top" for "top") was left out of the measure without a word.
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    nested = data / LABELS[0] / "batch1"
    nested.mkdir()
    for image in sorted((data / LABELS[0]).glob("*.png")):
        image.rename(nested / image.name)
    (data / LABELS[1].title()).mkdir()
    args = ["-o", tmp_path / "m.tflite", "--quantize", "none", "--validate", data]
    refused = _convert(tiny_keras, *args)
    assert refused.exit_code == EXIT_USAGE
    expected = f"but for case: {LABELS[1].title()} (label {LABELS[1]})"
    assert expected in " ".join(refused.output.split())
    assert not (tmp_path / "m.tflite").exists()
    (data / LABELS[1].title()).rmdir()
    (data / "other").mkdir()  # a class the model was not trained on (--classes): ignored
    shutil.copy(data / LABELS[1] / "000.png", data / "other")
    result = _convert(tiny_keras, *args)
    assert result.exit_code == EXIT_OK and "parity on 60 images" in result.output


def test_calibration_sample_is_stratified(tiny_data):
    sample = calibration_sample(tiny_data, LABELS, 9)
    assert sorted(p.parent.name for p in sample) == sorted(LABELS * 3)
    assert calibration_sample(tiny_data, LABELS, 9) == sample  # deterministic


def test_a_flat_calibration_folder_gives_its_images_only(tmp_path, tiny_data):
    # Its own walk (rglob) took hidden files (macOS's ._x.png beside x.png, a .thumbnails
    # folder) and folders named like images, each then an unreadable calibration image.
    flat = tmp_path / "flat"
    (flat / ".thumbnails").mkdir(parents=True)
    (flat / "sub").mkdir()
    png = (tiny_data / LABELS[0] / "000.png").read_bytes()
    for name in ("a.png", "sub/b.png", ".thumbnails/a.png"):
        (flat / name).write_bytes(png)
    (flat / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (flat / "folder.png").mkdir()
    sample = calibration_sample(flat, LABELS, 10)
    assert sorted(sample) == [flat / "a.png", flat / "sub" / "b.png"]


def _convert(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def test_bad_inputs_exit_2(tmp_path, tiny_keras, tiny_data):
    out = tmp_path / "o.tflite"
    missing = _convert(tmp_path / "nope.keras", "-o", out, "--quantize", "none")
    assert missing.exit_code == EXIT_USAGE and "no such Keras model" in missing.output

    corrupt = tmp_path / "corrupt" / "model.keras"
    corrupt.parent.mkdir()
    corrupt.write_bytes(os.urandom(2048))
    (corrupt.parent / "spec.json").write_text((tiny_keras.parent / "spec.json").read_text())
    bad = _convert(corrupt, "-o", out, "--quantize", "none")
    assert bad.exit_code == EXIT_USAGE and "cannot load" in bad.output

    four = ModelSpec(labels=("a", "b", "c", "d"), input_size=(16, 16), channels=1)
    (tmp_path / "four.json").write_text(four.to_json())
    mismatch = _convert(
        tiny_keras, "-o", out, "--quantize", "none", "--spec", tmp_path / "four.json"
    )
    assert mismatch.exit_code == EXIT_USAGE and "3 outputs but the spec lists 4" in mismatch.output

    (tmp_path / "empty").mkdir()
    empty = _convert(tiny_keras, "-o", out, "--calibration", tmp_path / "empty")
    assert empty.exit_code == EXIT_USAGE and "no readable images" in empty.output

    no_calibration = _convert(tiny_keras, "-o", out, "--quantize", "int8")
    assert no_calibration.exit_code == EXIT_USAGE and "--calibration" in no_calibration.output
    assert not out.exists()

    # Refused before converting (with --force, a directory used to fail in the final rename).
    for force in ([], ["--force"]):
        into_dir = _convert(tiny_keras, "-o", tmp_path, "--quantize", "none", *force)
        assert into_dir.exit_code == EXIT_USAGE and "is a directory" in into_dir.output
    no_dir = _convert(tiny_keras, "-o", tmp_path / "no" / "o.tflite", "--quantize", "none")
    assert no_dir.exit_code == EXIT_USAGE and "does not exist" in no_dir.output
    slash = _convert(tiny_keras, "-o", f"{tmp_path}/new/", "--quantize", "none")  # wrote "new"
    assert slash.exit_code == EXIT_USAGE and "does not exist" in slash.output
    assert not (tmp_path / "new").exists()

    # These ended in tracebacks (UnicodeDecodeError; Keras' UnboundLocalError on no images).
    (tmp_path / "spec.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a spec")
    binary_spec = _convert(
        tiny_keras, "-o", out, "--quantize", "none", "--spec", tmp_path / "spec.jpg"
    )
    assert binary_spec.exit_code == EXIT_USAGE and "not a spec" in binary_spec.output
    unreadable = tmp_path / "unreadable"
    for label in LABELS:
        (unreadable / label).mkdir(parents=True)
        (unreadable / label / "x.png").write_text("not a PNG")
    no_images = _convert(tiny_keras, "-o", out, "--quantize", "none", "--validate", unreadable)
    assert no_images.exit_code == EXIT_USAGE and "no readable images" in no_images.output
    assert not out.exists()


def test_a_folder_that_cannot_be_listed_is_an_error_line_not_a_traceback(tmp_path, monkeypatch):
    # A class folder copied as root (`sudo cp -r`): the PermissionError of listing it ended
    # `edgefer convert` in a traceback. (Simulated: the tests may run as root.)
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read: the folders are checked first")
    (tmp_path / "spec.json").write_text(
        ModelSpec(labels=LABELS, input_size=(16, 16), channels=1).to_json()
    )
    locked = tmp_path / "val"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = _convert(
        model, "-o", tmp_path / "o.tflite", "--quantize", "none", "--validate", locked
    )
    assert result.exit_code == EXIT_USAGE, result.exception
    assert f"{locked}: Permission denied" in result.output
    assert "Traceback" not in result.output


def _model(folder: Path, outputs: str, spec: ModelSpec) -> Path:
    """A small untrained Keras model of LABELS' grey input: ``outputs`` "softmax", "logits" or
    "two" (softmax scores and an auxiliary output)."""
    tf = import_tensorflow()
    keras = tf.keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((*spec.input_size, spec.channels))
    h = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    scores = keras.layers.Dense(len(spec.labels), activation=None if outputs == "logits" else None)(
        h
    )
    if outputs != "logits":
        scores = keras.layers.Softmax()(scores)
    heads = [scores, keras.layers.Dense(2)(h)] if outputs == "two" else scores
    folder.mkdir(parents=True)
    keras.Model(inputs, heads).save(folder / "model.keras")
    (folder / "spec.json").write_text(spec.to_json())
    return folder / "model.keras"


def test_models_and_outputs_that_cannot_work_are_refused_before_converting(
    tmp_path, tiny_keras, tiny_data
):
    """Each of these was written (exit 0) and failed only later, or did damage: found by an
    audit of convert on users' own models."""
    out = tmp_path / "o.tflite"
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)
    # -o - wrote a file named "-"; an existing FIFO or link was replaced by a file (with
    # -o /dev/stdout --force, as root: the system's /dev/stdout).
    dash = _convert(tiny_keras, "-o", "-", "--quantize", "none")
    assert dash.exit_code == EXIT_USAGE and "stdout carries the report" in dash.output
    os.mkfifo(tmp_path / "fifo.tflite")
    (tmp_path / "real.tflite").write_bytes(b"")
    os.symlink(tmp_path / "real.tflite", tmp_path / "link.tflite")
    for name, why in (("fifo.tflite", "not a regular file"), ("link.tflite", "is a link")):
        r = _convert(tiny_keras, "-o", tmp_path / name, "--quantize", "none", "--force")
        assert r.exit_code == EXIT_USAGE and why in r.output, r.output
    assert (tmp_path / "link.tflite").is_symlink() and not Path("-").exists()

    # Two outputs: converted, then unusable ("expected 1 input and 1 output").
    two = _model(tmp_path / "two", "two", spec)
    r = _convert(two, "-o", out, "--quantize", "none")
    assert r.exit_code == EXIT_USAGE and "1 inputs and 2 outputs" in r.output
    # Logits under a spec that says probabilities: classify printed clipped logits.
    logits = _model(tmp_path / "logits", "logits", spec)
    r = _convert(logits, "-o", out, "--quantize", "none")
    assert r.exit_code == EXIT_USAGE and '"output": "logits"' in r.output
    # A SavedModel folder was "no such Keras model"; a damaged file "File not found".
    r = _convert(tmp_path / "two", "-o", out, "--quantize", "none")
    assert r.exit_code == EXIT_USAGE and "is a folder (a SavedModel?)" in r.output
    damaged = tmp_path / "damaged" / "model.keras"
    damaged.parent.mkdir()
    damaged.write_bytes(b"PK\x03\x04 not a zip")
    (damaged.parent / "spec.json").write_text(spec.to_json())
    r = _convert(damaged, "-o", out, "--quantize", "none")
    assert r.exit_code == EXIT_USAGE and "not a Keras model (.keras or .h5)" in r.output
    # A --validate folder without label folders was refused only after the conversion.
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(next((tiny_data / LABELS[0]).iterdir()), flat / "x.png")
    r = _convert(tiny_keras, "-o", out, "--quantize", "none", "--validate", flat)
    assert r.exit_code == EXIT_USAGE and "no label folders in validation folder" in r.output
    # Calibration folders named as the labels but for case fell back to a flat sample.
    upper = tmp_path / "upper"
    for label in LABELS:
        shutil.copytree(tiny_data / label, upper / label.upper())
    r = _convert(tiny_keras, "-o", out, "--calibration", upper)
    assert r.exit_code == EXIT_USAGE and "but for case" in r.output
    assert not out.exists()


def test_a_model_that_is_not_a_classifier_is_refused_before_converting(tmp_path):
    # A per-pixel softmax with as many channels as labels was converted (exit 0) into a model
    # that classify could not use; a model of one number per image was "None outputs".
    keras = import_tensorflow().keras
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)
    inputs = keras.Input((16, 16, 1))
    heads = {
        "per-pixel": keras.layers.Conv2D(len(LABELS), 1, activation="softmax")(inputs),
        "scalar": keras.layers.Reshape(())(keras.layers.Dense(1)(keras.layers.Flatten()(inputs))),
        "1x1": keras.layers.Conv2D(len(LABELS), 1, activation="softmax")(
            keras.layers.GlobalAveragePooling2D(keepdims=True)(inputs)
        ),
    }
    for name, head in heads.items():
        (tmp_path / name).mkdir()
        keras.Model(inputs, head).save(tmp_path / name / "model.keras")
        (tmp_path / name / "spec.json").write_text(spec.to_json())
        out = tmp_path / f"{name}.tflite"
        r = _convert(tmp_path / name / "model.keras", "-o", out, "--quantize", "none")
        assert r.exit_code == EXIT_USAGE, (name, r.output)
        said = " ".join(r.output.split())
        assert "is not one score per label (3,)" in said
        assert ("keras.layers.Flatten()" in said) == (name == "1x1"), said
        assert not out.exists()


def test_a_model_with_named_or_listed_output_converts(tmp_path, tiny_data):
    # keras.Model(x, {"probs": y}) answers with a dict, and convert ended in a TypeError
    # traceback ("float() argument must be ... not 'dict'"); TFLite takes it as it is.
    keras = import_tensorflow().keras
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    probs = keras.layers.Dense(len(LABELS), activation="softmax")(h)
    for name, outputs in (("named", {"probs": probs}), ("listed", [probs])):
        (tmp_path / name).mkdir()
        keras.Model(inputs, outputs).save(tmp_path / name / "model.keras")
        (tmp_path / name / "spec.json").write_text(spec.to_json())
        out = tmp_path / f"{name}.tflite"
        args = ["-o", out, "--quantize", "none", "--validate", tiny_data]
        r = _convert(tmp_path / name / "model.keras", *args)
        assert r.exit_code == EXIT_OK, (name, r.output, r.exception)
        line = next(x for x in r.output.splitlines() if "max |Δp|" in x)
        assert float(line.replace("│", " ").split()[-1]) < 1e-4, line


def test_the_model_or_its_spec_as_output_is_refused(tmp_path, tiny_keras):
    # -o model.keras --force replaced the trained Keras model with the .tflite (and without
    # --force the message said to pass it); -o spec.json --force replaced the spec.
    folder = tmp_path / "run"
    shutil.copytree(tiny_keras.parent, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name, what in (("model.keras", "the Keras model being converted"), ("spec.json", "spec")):
        for force in ([], ["--force"]):
            r = _convert(folder / "model.keras", "-o", folder / name, "--quantize", "none", *force)
            assert r.exit_code == EXIT_USAGE, r.output
            assert what in r.output and "--force" not in r.output, r.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_tflite_model_given_to_convert_is_named_as_such(tmp_path):
    # The shipped model (no spec.json beside it) was "no model spec: expected models/spec.json",
    # and a .tflite with one, Keras's "File format not supported: ..." cut at 200 characters.
    shipped = shipped_models_dir() / SHIPPED_MODELS["default"]
    alone, beside = tmp_path / "alone", tmp_path / "beside"
    for folder in (alone, beside):
        folder.mkdir()
        shutil.copy(shipped, folder / "m.tflite")
    (beside / "spec.json").write_text(read_spec(shipped.read_bytes()).to_json())
    for folder in (alone, beside):
        r = _convert(folder / "m.tflite", "-o", tmp_path / "o.tflite", "--quantize", "none")
        assert r.exit_code == EXIT_USAGE, r.output
        assert "is a TFLite model, already converted" in " ".join(r.output.split()), r.output
    assert not (tmp_path / "o.tflite").exists()


def test_a_sequential_saved_before_it_was_built_is_an_error_line(tmp_path):
    # Its model.inputs raised AttributeError ("has no defined inputs yet"): a traceback.
    keras = import_tensorflow().keras
    folder = tmp_path / "seq"
    folder.mkdir()
    layers = [keras.layers.Flatten(), keras.layers.Dense(len(LABELS), activation="softmax")]
    keras.Sequential(layers).save(folder / "model.keras")
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)
    (folder / "spec.json").write_text(spec.to_json())
    r = _convert(folder / "model.keras", "-o", tmp_path / "o.tflite", "--quantize", "none")
    assert r.exit_code == EXIT_USAGE, r.exception
    assert "no input shape" in r.output and "keras.Input((16, 16, 1))" in r.output


def test_logits_models_convert_and_calibration_gaps_are_said(tmp_path, tiny_data):
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1, output="logits")
    logits = _model(tmp_path / "logits", "logits", spec)
    out = tmp_path / "o.tflite"
    r = _convert(logits, "-o", out, "--quantize", "none", "--validate", tiny_data)
    assert r.exit_code == EXIT_OK, r.output
    # The parity table compared raw Keras logits with TFLite probabilities: 0.80 for float32.
    line = next(x for x in r.output.splitlines() if "max |Δp|" in x)
    assert float(line.replace("│", " ").split()[-1]) < 1e-3, line
    softmax = _model(tmp_path / "softmax", "softmax", spec)  # ... and the other way round
    r = _convert(softmax, "-o", out, "--quantize", "none", "--force")
    assert r.exit_code == EXIT_USAGE and "ends in a softmax" in r.output
    some = tmp_path / "some"
    shutil.copytree(tiny_data / LABELS[0], some / LABELS[0])
    r = _convert(logits, "-o", out, "--force", "--calibration", some)
    assert r.exit_code == EXIT_OK, r.output
    assert f"no folder for {', '.join(LABELS[1:])}" in r.output
    r = _convert(logits, "-o", out, "--force", "--quantize", "dynamic", "--calibration", some)
    assert r.exit_code == EXIT_OK and "--calibration is for --quantize int8" in r.output


def test_sigterm_during_convert_ends_it_like_ctrl_c(tmp_path):
    # Python's default SIGTERM ended the process at once: TensorFlow's temporary SavedModel
    # (twice the model's size) stayed in /tmp. Now the run's scratch folder, where the
    # converter's temporary files go, is removed at once, and it exits 143.
    script = (
        "import os, signal, sys, tempfile, time\n"
        "import edgefer.convert\n"
        "from edgefer.cli import app\n"
        "def convert(*args):\n"
        "    saved = tempfile.mkdtemp()  # as TensorFlow's converter makes its SavedModel\n"
        "    open(os.path.join(saved, 'saved_model.pb'), 'wb').close()\n"
        "    print(saved, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "edgefer.convert.convert = convert\n"
        "app(['convert', 'm.keras', '-o', 'o.tflite'])\n"
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 143, done.stderr
    assert "interrupted; nothing written" in done.stderr and "Traceback" not in done.stderr
    saved = Path(done.stdout.strip())
    assert saved.parent.parent == tmp and saved.parent.name.startswith("edgefer-convert-")
    assert not list(tmp.iterdir())  # the SavedModel and the scratch folder around it: gone


@pytest.mark.parametrize("ctrl_c", [True, False])
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
def test_ctrl_c_that_tensorflow_turns_into_another_error_is_still_ctrl_c(tmp_path, ctrl_c, wrapped):
    # Ctrl-C inside TensorFlow's C code came out, 1 time in 5, as a SystemError traceback
    # ("returned a result with an exception set"), or wrapped by to_tflite as "conversion
    # failed: ...". Another error with no Ctrl-C stays one.
    error = "edgefer.convert.ConvertError" if wrapped else "SystemError"
    script = (
        "import os, signal\n"
        "import edgefer.convert\n"
        "from edgefer.cli import app\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal\n"
        "def check_output(*args):  # the first step of convert()\n"
        f"    if {ctrl_c}:\n"
        "        try:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        except KeyboardInterrupt:\n"
        "            pass  # swallowed in the C code, which then fails its own way\n"
        f"    raise {error}('conversion failed: returned a result with an exception set')\n"
        "edgefer.convert.check_output = check_output\n"
        "app(['convert', 'm.keras', '-o', 'o.tflite'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    if ctrl_c:
        assert done.returncode == 130, done.stderr
        assert "interrupted; nothing written" in done.stderr and "Traceback" not in done.stderr
    elif wrapped:
        assert done.returncode == 2 and "error: conversion failed" in done.stderr, done.stderr
    else:
        assert done.returncode == 1 and "SystemError" in done.stderr, done.stderr


def test_without_tensorflow_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ConvertError, match=r'pip install "edgefer\[train\]"'):
        import_tensorflow()


def test_converter_chatter_stays_out_of_stdout(tmp_path, tiny_keras):
    out = tmp_path / "m.tflite"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefer",
            "convert",
            str(tiny_keras),
            "-o",
            str(out),
            "--quantize",
            "dynamic",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines() == [
        f"wrote {out} ({out.stat().st_size:,} bytes, dynamic)"
    ]


# --- tflite-runtime 2.14: the runtime of 32-bit Pi OS (Python <= 3.11, numpy < 2) ---------

COMPAT_SCRIPT = """
import json, sys
import numpy as np
from edgefer.classifier import Classifier
x = np.load(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    with Classifier.create_from_model_path(path, runtime="tflite-runtime", num_threads=1) as c:
        out[path] = c.predict(x).argmax(1).tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def tflite_runtime_python(tmp_path_factory):
    """A venv with tflite-runtime 2.14 + numpy<2, or a skip that says why not."""
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has no wheels for Python >= 3.12")
    venv = tmp_path_factory.mktemp("tflite-runtime-venv")
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2", "pillow"],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"cannot install tflite-runtime 2.14 here: {proc.stderr.strip()[-300:]}")
    return python


@pytest.mark.slow
def test_every_kind_loads_in_tflite_runtime_2_14(tflite_runtime_python, tiny_models, tmp_path):
    x, _ = synth_images(50, seed=7)
    np.save(tmp_path / "x.npy", x)
    paths = [str(tiny_models[k]) for k in KINDS]
    proc = subprocess.run(
        [str(tflite_runtime_python), "-c", COMPAT_SCRIPT, str(tmp_path / "x.npy"), *paths],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tops = json.loads(proc.stdout.strip().splitlines()[-1])
    for kind, path in zip(KINDS, paths, strict=True):
        with Classifier.create_from_model_path(path, num_threads=1) as c:
            expected = c.predict(x).argmax(1).tolist()
        assert tops[path] == expected, kind


def test_a_file_given_as_the_validation_or_calibration_folder_is_named_as_not_a_folder(tmp_path):
    # It was "validation folder not found" for a file that is there.
    from edgefer.convert import ConvertError, check_labelled_folder

    given = tmp_path / "val.zip"
    given.write_bytes(b"PK")
    with pytest.raises(ConvertError, match=r"^validation data .*val\.zip is a file, not a folder"):
        check_labelled_folder(given, LABELS)
    with pytest.raises(ConvertError, match=r"^calibration folder not found: "):
        check_labelled_folder(tmp_path / "nope", LABELS, purpose="calibration")

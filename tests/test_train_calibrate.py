"""calibrate: temperature scaling fitted on labelled images and folded into the last layer."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgefer.spec import ModelSpec
from train.calibrate import (
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    logits,
    nll,
)
from train.cli import app
from train.tfenv import keras


def sample_labels(z: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from softmax(z): a model with logits z is calibrated for them."""
    probs = np.exp(log_softmax(z))
    u = np.random.default_rng(seed).uniform(size=(len(z), 1))
    return (probs.cumsum(axis=1) < u).sum(axis=1)


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.0])
def test_fit_temperature_recovers_a_known_softening(t_true):
    z = np.random.default_rng(0).normal(0, 3, (20000, 5))
    y = sample_labels(z, seed=1)
    # A model whose logits are z * t_true is right as often as z says, with confidences
    # softened (t_true < 1) or sharpened (> 1): dividing by t_true undoes that.
    t = fit_temperature(z * t_true, y)
    assert t == pytest.approx(t_true, rel=0.05)
    assert nll(z * t_true, y, t) <= nll(z * t_true, y, 1.0)


def test_expected_calibration_error():
    y = np.array([0, 0, 1, 1])
    sure_and_right = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(sure_and_right, y) == 0.0
    half = np.full((4, 2), 0.5) + np.array([[1e-3, -1e-3]])  # says 0.5, right on half
    assert expected_calibration_error(half, y) == pytest.approx(0.0, abs=2e-3)
    sure_and_half_right = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(sure_and_half_right, y) == pytest.approx(0.5)


def test_calibrate_folds_the_temperature_and_changes_no_prediction(
    tmp_path, tiny_keras, tiny_data, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # its image cache goes to runs/cache here
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(
        app, ["calibrate", str(tiny_keras), str(tiny_data), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "temperature" in result.output and "calibration error" in result.output
    summary = json.loads((out / "calibration.json").read_text())
    t = summary["temperature"]
    assert summary["images"] == 60 and summary["after"]["nll"] <= summary["before"]["nll"]
    assert summary["after"]["accuracy"] == summary["before"]["accuracy"]
    assert len(summary["cross_check"]["halves"]) == 2
    spec = ModelSpec.from_json((out / "spec.json").read_text())
    assert spec.metadata["temperature"] == t and spec.labels == ("top", "left", "center")
    assert spec.metadata["temperature_fitted_on"] == str(tiny_data)

    from train.data import load_folder

    x = load_folder(tiny_data, spec.labels, spec.input_size, spec.channels, tmp_path / "c").x
    original = keras.models.load_model(tiny_keras, compile=False)
    scaled = keras.models.load_model(out / "model.keras", compile=False)
    z = logits(original, x)
    expected = np.exp(log_softmax(z / t))
    got = scaled.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert (got.argmax(1) == z.argmax(1)).all()


def test_calibrate_refuses_a_model_without_a_softmax_head(tmp_path, tiny_keras, tiny_data):
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Average()([h, h]))
    folder = tmp_path / "avg"
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "spec.json").write_text(tiny_keras.with_name("spec.json").read_text())
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["calibrate", str(folder / "model.keras"), str(tiny_data), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2 and "not a Dense layer with a softmax" in result.output
    same = runner.invoke(
        app, ["calibrate", str(tiny_keras), str(tiny_data), "--out", str(tiny_keras.parent)]
    )
    assert same.exit_code == 2 and "must not be the model's folder" in same.output


def test_calibrating_a_calibrated_model_records_the_temperature_folded_in_all(
    tmp_path, tiny_keras, tiny_data, monkeypatch
):
    # The spec's temperature is what from-tflite undoes. A model calibrated before holds its
    # first temperature in the Dense layer already; the second run recorded only its own.
    monkeypatch.chdir(tmp_path)
    before = tmp_path / "calibrated once"
    before.mkdir()
    (before / "model.keras").write_bytes(tiny_keras.read_bytes())
    spec = ModelSpec.from_json(tiny_keras.with_name("spec.json").read_text())
    (before / "spec.json").write_text(
        dataclasses.replace(spec, metadata={"temperature": 0.5}).to_json()
    )
    out = tmp_path / "again"
    result = CliRunner().invoke(
        app, ["calibrate", str(before / "model.keras"), str(tiny_data), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    t = json.loads((out / "calibration.json").read_text())["temperature"]
    folded = ModelSpec.from_json((out / "spec.json").read_text()).metadata["temperature"]
    assert folded == pytest.approx(0.5 * t, abs=1e-4)


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
@pytest.mark.parametrize("spec_beside", [False, True])
def test_a_tflite_model_is_named_as_one(command, spec_beside, tmp_path, tiny_keras, tiny_data):
    # Given a converted model, both asked for a spec.json beside it (it is inside the .tflite),
    # or, with one there, printed Keras's "File format not supported" about SavedModels.
    shipped = Path(__file__).resolve().parents[1] / "models" / "edgefer-fer2013-int8.tflite"
    model = tmp_path / "model.tflite"
    model.write_bytes(shipped.read_bytes())
    if spec_beside:
        (tmp_path / "spec.json").write_text(tiny_keras.with_name("spec.json").read_text())
    args = [command, str(model), str(tiny_data)]
    result = CliRunner().invoke(
        app, args + (["--out", str(tmp_path / "o")] * (command == "calibrate"))
    )
    assert result.exit_code == 2, result.output
    assert "is a TFLite model" in result.output and "evaluate-csv" in result.output
    assert "no spec.json" not in result.output and "File format" not in result.output


def test_a_missing_model_is_named(tmp_path):
    from train.evaluate import load_model_and_spec

    with pytest.raises(FileNotFoundError, match=r"no model\.keras in"):
        load_model_and_spec(tmp_path / "model.keras")


def test_a_temperature_at_the_end_of_the_range_searched_is_said(
    tmp_path, tiny_keras, tiny_data, monkeypatch
):
    # Scores that say nothing of the labels (an untrained model, another dataset's) drove the
    # search to its end, T 20.000, which was folded in and reported like any other.
    import train.calibrate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train.calibrate, "logits", lambda model, x: np.zeros((len(x), 3)))
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(
        app, ["calibrate", str(tiny_keras), str(tiny_data), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: temperature 20.000 is the end of the range searched (0.05-20)" in said
    assert "say little about these images' labels" in said

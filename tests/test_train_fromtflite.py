"""train from-tflite: a trainable Keras edge model rebuilt from an int8 edgefer model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LABELS, SIZE, synth_images

from edgefer.spec import ModelSpec

#: Two stages of one width: two convs of one shape (16->16) in different places, as in the
#: shipped robust model (widths 48, 96, 192, 192).
ARCH_ARGS = {"stem": [4], "widths": [8, 16, 16]}


@pytest.fixture(scope="module")
def tiny_edge(tmp_path_factory):
    """A tiny edge model trained a little, calibrated at T 0.5, converted to int8; returns the
    int8 file, the uncalibrated Keras model and the training images."""
    from edgefer.convert import convert
    from train import archs
    from train.calibrate import with_temperature
    from train.tfenv import keras

    keras.utils.set_random_seed(0)
    x, y = synth_images(600, seed=0)
    model = archs.edge((SIZE, SIZE, 1), len(LABELS), stem=(4,), widths=(8, 16, 16))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32), y, epochs=4, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("edge")
    with_temperature(model, 0.5).save(folder / "model.keras")
    spec = ModelSpec(
        labels=LABELS,
        input_size=(SIZE, SIZE),
        channels=1,
        name="tiny-edge",
        # No arch_args: fit did not record them (the robust model's spec has none).
        metadata={"arch": "edge", "temperature": 0.5},
    )
    (folder / "spec.json").write_text(spec.to_json())
    images = folder / "images"
    for i, (img, label) in enumerate(zip(x[:150], y[:150], strict=True)):
        (images / LABELS[label]).mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(images / LABELS[label] / f"{i}.png", img, scale=False)
    int8 = folder / "edge-int8.tflite"
    convert(folder / "model.keras", int8, quantize="int8", calibration_dir=images)
    return int8, model, x


def test_rebuilt_model_is_the_uncalibrated_float_network(tiny_edge):
    from train.fromtflite import rebuild

    int8, original, x = tiny_edge
    rng = np.random.default_rng(1)
    sample = x[rng.permutation(len(x))]
    model, spec, report = rebuild(int8.read_bytes(), sample)
    assert report["agreement"] >= 0.97
    assert report["temperature_undone"] == 0.5
    assert report["params"] == original.count_params()
    assert spec.labels == LABELS
    assert not {"temperature", "quantization", "calibration_data"} & set(spec.metadata)
    assert model.count_params() == original.count_params()
    assert spec.metadata["arch_args"] == ARCH_ARGS  # read off the graph
    # Its probabilities are the uncalibrated model's (within int8 weight rounding), not the
    # sharper calibrated ones that the int8 file gives.
    ours = np.asarray(model.predict(sample.astype(np.float32), verbose=0))
    theirs = np.asarray(original.predict(sample.astype(np.float32), verbose=0))
    assert np.abs(ours - theirs).mean() < 0.02
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.97
    # Training mode (batch statistics) computes nearly the same function: a warm start keeps it.
    batch = np.asarray(model(sample[:256].astype(np.float32), training=True))
    assert (batch.argmax(1) == ours[:256].argmax(1)).mean() >= 0.9


def test_a_model_that_is_not_an_edge_network_is_refused(int8_model, tiny_edge):
    from train.fromtflite import rebuild

    x = tiny_edge[2]
    with pytest.raises(ValueError, match="not an edge model"):
        rebuild(int8_model.read_bytes(), x[:64])  # conv + flatten + dense: has a RESHAPE


def test_from_tflite_prints_no_runtime_chatter(tiny_edge, tmp_path):
    # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." came out between the
    # command's own lines. In a fresh process: the runtime prints it once per process, so a test
    # in this one would miss it after any other interpreter was made.
    import subprocess
    import sys

    int8 = tiny_edge[0]
    args = ["from-tflite", str(int8), str(int8.parent / "images"), "--out", str(tmp_path / "k")]
    done = subprocess.run(
        [sys.executable, "-m", "train", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "top-1 agreement with the int8 model" in done.stdout
    assert "XNNPACK" not in done.stdout + done.stderr
    assert (tmp_path / "k" / "model.keras").exists()


def test_from_tflite_names_the_files_it_leaves_out(tiny_edge, tmp_path, monkeypatch):
    # An unreadable image in DATA_DIR was left out without a word, as fit and baselines say.
    import shutil

    from typer.testing import CliRunner

    from train.cli import app

    int8 = tiny_edge[0]
    images = shutil.copytree(int8.parent / "images", tmp_path / "images")
    label = next(p for p in images.iterdir() if p.is_dir())
    (label / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.chdir(tmp_path)  # its decode cache, runs/cache
    result = CliRunner().invoke(app, ["from-tflite", str(int8), str(images), "--out", "k"])
    assert result.exit_code == 0, result.output
    assert "1 unreadable files left out" in result.output and "cut.png" in result.output


def test_the_batch_statistics_figure_is_the_same_each_time(tiny_edge):
    # Dropout stayed on while the batch-norms ran on batch statistics, with unseeded masks: the
    # figure for one model and one sample moved from run to run (0.962-1.000 on the shipped
    # model). It is of the batch-norms alone now, and the dropout rate is left as it was.
    from train.fromtflite import rebuild
    from train.tfenv import keras

    int8, _, x = tiny_edge
    figures = set()
    for _ in range(4):
        model, _, report = rebuild(int8.read_bytes(), x[:512])
        figures.add(report["batch_statistics_agreement"])
    assert len(figures) == 1
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates and all(rate > 0 for rate in rates)


def test_from_tflite_splits_one_folder_by_its_split_seed_as_fit_does(
    tiny_edge, tmp_path, monkeypatch
):
    # from-tflite split a one-folder dataset by seed 0 whatever fit's --split-seed: the batch-norm
    # statistics and the agreement were measured partly on val and test images of the fit run
    # of another split seed that the model then warm-starts.
    import json

    from typer.testing import CliRunner

    from train import fromtflite
    from train.cli import app
    from train.data import load_dataset

    int8 = tiny_edge[0]
    images = int8.parent / "images"
    seen = []

    def rebuild(blob, x):
        seen.append(x)
        return real(blob, x)

    real = fromtflite.rebuild
    monkeypatch.setattr(fromtflite, "rebuild", rebuild)
    monkeypatch.chdir(tmp_path)  # its decode cache, runs/cache
    args = ["from-tflite", str(int8), str(images), "--out", "k", "--split-seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    fits = {s: load_dataset(images, (SIZE, SIZE), 1, LABELS, split_seed=s) for s in (0, 3)}
    train = {s: sorted(x.tobytes() for x in d.splits["train"].x) for s, d in fits.items()}
    assert train[0] != train[3]  # the seed matters here
    assert sorted(x.tobytes() for x in seen[0]) == train[3]  # all of them: fewer than 4,096
    spec = json.loads((tmp_path / "k" / "spec.json").read_text())
    assert spec["metadata"]["rebuilt_from_int8"]["split_seed"] == 3

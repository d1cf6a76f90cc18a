"""Smoke-train each architecture; checkpoints, resume, spec.json, report, results table."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from edgefer.spec import ModelSpec
from train.augment import PRESETS
from train.config import FitConfig
from train.fit import fit
from train.tfenv import keras

pytestmark = pytest.mark.slow  # 5-15 s each: real Keras fits and an int8 conversion

LABELS = ("dark", "light", "stripes")


def synth_dataset(root, n_per_label: int = 12, size: int = 16):
    """train/ and val/ folders of three easy classes of grey PNGs."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_per_label), ("val", n_per_label // 2)):
        for k, label in enumerate(LABELS):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                base = rng.uniform(0, 60, (size, size)) + 120 * (k == 1)
                if k == 2:
                    base[::4] += 180
                Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L").save(
                    folder / f"{i}.png"
                )
    return root


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/cache and docs/ land in tmp_path
    return synth_dataset(tmp_path / "data")


def config(data_dir, **kw) -> FitConfig:
    base = FitConfig(
        data_dir=str(data_dir),
        input_size=(16, 16),
        epochs=1,
        batch_size=8,
        warmup_epochs=0,
        augment=PRESETS["full"],
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("seed", {}), ("edge", {}), ("edge", {"head": "flatten"}), ("edge", {"se": 4})],
)
def test_one_epoch_writes_model_spec_and_checkpoint(data_dir, tmp_path, arch, kwargs):
    out = tmp_path / arch
    state = fit(config(data_dir, arch=arch, arch_kwargs=kwargs), out, log=lambda _: None)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    for name in ("model.keras", "last-001.keras", "spec.json", "state.json", "config.json"):
        assert (out / name).stat().st_size > 0
    spec = ModelSpec.from_json((out / "spec.json").read_text())
    assert spec.labels == LABELS and spec.input_size == (16, 16) and spec.channels == 1
    assert FitConfig.load(out).classes == LABELS  # the run's labels, whatever is added later
    assert spec.mean == (0.0,) and spec.std == (1.0,) and spec.output == "probabilities"
    assert spec.metadata["params"] > 0 and spec.metadata["flops"] > 0
    model = keras.models.load_model(out / "model.keras")
    assert (
        getattr(model, "optimizer", None) is None
    )  # the inference model carries no optimizer state
    probs = model.predict(np.full((1, 16, 16, 1), 200.0, np.float32), verbose=0)
    assert probs.shape == (1, 3) and probs.sum() == pytest.approx(1.0, rel=1e-5)
    # The device contract: every op converts and quantizes to full int8.
    from edgefer.convert import convert

    done = convert(out / "model.keras", tmp_path / f"{arch}.tflite", "int8", data_dir / "train")
    assert done.spec.labels == LABELS and done.size > 0


def test_resume_continues_exactly(data_dir, tmp_path):
    # A small edge net (dropout included) keeps this fast; 2 epochs = warmup + cosine.
    small = {"stem": (4,), "widths": (8,)}
    cfg = config(data_dir, arch="edge", arch_kwargs=small, epochs=2, warmup_epochs=1)
    first = []
    straight = fit(cfg, tmp_path / "straight", log=first.append)
    # What it decodes, at what size (minutes at 222x222x3, without a word before), and once.
    assert any(line.startswith("decoding 36 images in ") and "at 16x16x1" in line for line in first)
    assert any("images 16x16x1" in line for line in first if line.startswith("data "))
    out = tmp_path / "resumed"
    assert fit(cfg, out, log=lambda _: None, stop_after=1)["epoch"] == 1
    with pytest.raises(FileExistsError):
        fit(cfg, out, log=lambda _: None)
    lines = []
    resumed = fit(replace(cfg, epochs=99), out, resume=True, log=lines.append)  # config.json wins
    assert any("resumed after epoch 1" in line for line in lines)
    assert not any(line.startswith("decoding") for line in lines)  # from runs/cache
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    for key in ("lr", "loss", "val_loss"):
        np.testing.assert_allclose(
            [r[key] for r in straight["history"]], [r[key] for r in resumed["history"]], rtol=1e-5
        )
    steps = 2 * -(-36 // 8)
    assert int(keras.models.load_model(out / "last-002.keras").optimizer.iterations) == steps
    assert not (out / "last-001.keras").exists()


def test_mixed_bfloat16_trains_and_saves_a_float32_model(data_dir, tmp_path):
    small = {"stem": (4,), "widths": (8, 16), "blocks": (1, 2)}
    cfg = config(data_dir, arch="edge", arch_kwargs=small, epochs=2, precision="mixed_bfloat16")
    out = tmp_path / "bf16"
    fit(cfg, out, log=lambda _: None, stop_after=1)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    state = fit(cfg, out, resume=True, log=lambda _: None)
    assert state["epoch"] == 2 and np.isfinite(state["history"][-1]["loss"])
    last = keras.models.load_model(out / "last-002.keras")
    assert last.layers[2].compute_dtype == "bfloat16"  # the checkpoint trains on in bfloat16
    assert last.layers[-1].compute_dtype == "float32"  # softmax in float32
    model = keras.models.load_model(out / "model.keras")
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 3
    from edgefer.convert import convert

    done = convert(out / "model.keras", tmp_path / "bf16.tflite", "int8", data_dir / "train")
    assert done.spec.labels == LABELS and done.size > 0


def test_precision_is_checked(data_dir):
    with pytest.raises(ValueError, match="precision"):
        config(data_dir, precision="float16")


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        fit(config(tmp_path), tmp_path / "none", resume=True)


def test_report_writes_plots_metrics_and_results_row(data_dir, tmp_path):
    from train.report import report_run

    out = tmp_path / "run"
    fit(config(data_dir, arch="seed", epochs=2), out, log=lambda _: None)
    report_run(out, log=lambda _: None, results=tmp_path / "results.md", figures=tmp_path / "fig")
    for png in (
        "curves.png",
        "eval-val/confusion.png",
        "eval-val/samples.png",
        "eval-val-tta/confusion.png",
    ):
        assert (out / png).stat().st_size > 5000, png
    metrics = json.loads((out / "eval-val" / "metrics.json").read_text())
    assert metrics["n"] == 18 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["per_class"]) == set(LABELS)
    table = (tmp_path / "results.md").read_text()
    assert "| run | seed | data |" in table
    assert len(list((tmp_path / "fig").glob("run-*.png"))) == 2  # no dataset images in docs
    # The CLI's evaluate on a folder, with flip TTA.
    from typer.testing import CliRunner

    from train.cli import app

    own_eval = (out / "eval-val-tta" / "metrics.json").read_text()
    first = data_dir / "val" / LABELS[0]
    stray = data_dir / "val" / LABELS[0].upper()  # a folder the model has no label for
    stray.mkdir()
    (stray / "x.png").write_bytes(next(first.iterdir()).read_bytes())
    result = CliRunner().invoke(
        app, ["evaluate", str(out / "model.keras"), str(data_dir / "val"), "--tta"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy=" in result.output
    assert f"not the model's labels, not scored: {LABELS[0].upper()}" in result.output
    # fit's own eval-val (of its val split) is kept: this evaluation of a folder goes beside it.
    assert (out / "eval-val-tta" / "metrics.json").read_text() == own_eval
    assert (out / "eval-data-val-tta" / "metrics.json").exists()
    assert json.loads((out / "eval-val-tta" / "metrics.json").read_text())["tta"] is True


def test_distillation_targets_mix_label_and_teacher_ensemble(data_dir, tmp_path):
    small = {"stem": (4,), "widths": (8,)}
    teacher_a = tmp_path / "a"
    teacher_b = tmp_path / "b"
    fit(config(data_dir, arch="edge", arch_kwargs=small), teacher_a, log=lambda _: None)
    fit(config(data_dir, arch="edge", arch_kwargs=small, seed=3), teacher_b, log=lambda _: None)
    paths = [str(teacher_a / "model.keras"), str(teacher_b / "model.keras")]
    from train.fit import prepare_data, teacher_targets

    cfg = config(data_dir, teacher=",".join(paths), teacher_weight=0.4, teacher_temperature=1.0)
    train = prepare_data(cfg).splits["train"]
    out = tmp_path / "student"
    out.mkdir()
    targets, agree = teacher_targets(cfg, train.x, train.y, 3, out)
    # The soft part is the mean of both teachers over each image and its mirror.
    expected = np.zeros((len(train.y), 3))
    for path in paths:
        teacher = keras.models.load_model(path)
        for x in (train.x, train.x[:, :, ::-1]):
            expected += teacher.predict(x.astype(np.float32), verbose=0) / 4
    onehot = np.eye(3)[train.y]
    np.testing.assert_allclose(targets, 0.6 * onehot + 0.4 * expected, atol=1e-5)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
    assert agree == pytest.approx(float(np.mean(expected.argmax(1) == train.y)))
    assert (out / "teacher-train.npy").is_file()  # a resume reuses it
    # ... but not when the teachers are others (one of the two alone here).
    alone, _ = teacher_targets(replace(cfg, teacher=paths[0]), train.x, train.y, 3, out)
    assert not np.allclose(alone, targets, atol=1e-4)
    # Softened (T=2): the same ranking, flatter.
    soft, _ = teacher_targets(replace(cfg, teacher_temperature=2.0), train.x, train.y, 3, out)
    assert np.all((soft - 0.6 * onehot).max(1) <= (targets - 0.6 * onehot).max(1) + 1e-6)
    # A whole student run with the teacher trains and logs the agreement.
    lines = []
    state = fit(replace(cfg, epochs=1), tmp_path / "run", log=lines.append)
    assert state["epoch"] == 1 and any("agrees with the label" in line for line in lines)
    with pytest.raises(ValueError, match="teacher_weight"):
        replace(cfg, teacher_weight=1.5)


def test_tflite_teacher_runs_in_the_edge_runtime_and_must_share_the_labels(data_dir, tmp_path):
    """A converted (int8) model, e.g. the shipped one, can teach; its label order is checked."""
    from edgefer.classifier import Classifier
    from edgefer.convert import convert
    from train.fit import prepare_data, teacher_targets

    trained = tmp_path / "t"
    fit(
        config(data_dir, arch="edge", arch_kwargs={"stem": (4,), "widths": (8,)}),
        trained,
        log=lambda _: None,
    )
    tflite = tmp_path / "t.tflite"
    convert(trained / "model.keras", tflite, quantize="int8", calibration_dir=data_dir / "train")
    cfg = config(data_dir, teacher=str(tflite), teacher_weight=1.0, teacher_temperature=1.0)
    data = prepare_data(cfg)
    train = data.splits["train"]
    out = tmp_path / "student"
    out.mkdir()
    targets, agree = teacher_targets(cfg, train.x, train.y, 3, out, data.labels)
    with Classifier.create_from_model_path(tflite, num_threads=1) as classifier:
        mirrored = np.ascontiguousarray(train.x[:, :, ::-1])
        expected = (classifier.predict(train.x) + classifier.predict(mirrored)) / 2
    np.testing.assert_allclose(targets, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert agree == pytest.approx(float(np.mean(expected.argmax(1) == train.y)))
    swapped = ("light", "dark", "stripes")
    with pytest.raises(ValueError, match="labels"):
        teacher_targets(cfg, train.x, train.y, 3, tmp_path, swapped)
    # A Keras teacher is checked against the spec.json that fit wrote beside it.
    keras_cfg = replace(cfg, teacher=str(trained / "model.keras"))
    with pytest.raises(ValueError, match="labels"):
        teacher_targets(keras_cfg, train.x, train.y, 3, tmp_path, swapped)


def test_npy_teacher_counts_each_of_its_teachers_once_and_is_checked(data_dir, tmp_path):
    """Predictions made elsewhere (train.torchkd's teachers-train.npy: teachers x images x
    classes, each image already averaged with its mirror) join a model teacher as equals."""
    from train.fit import prepare_data, teacher_targets

    trained = tmp_path / "t"
    fit(
        config(data_dir, arch="edge", arch_kwargs={"stem": (4,), "widths": (8,)}),
        trained,
        log=lambda _: None,
    )
    cfg = config(data_dir, teacher_weight=1.0, teacher_temperature=1.0)
    data = prepare_data(cfg)
    train = data.splits["train"]
    rng = np.random.default_rng(1)
    stack = rng.dirichlet(np.ones(3), size=(2, len(train.y))).astype(np.float16)
    npy = tmp_path / "gpu" / "teachers-train.npy"
    npy.parent.mkdir()
    np.save(npy, stack)
    model = keras.models.load_model(trained / "model.keras")
    mirrored = train.x[:, :, ::-1].astype(np.float32)
    own = (
        model.predict(train.x.astype(np.float32), verbose=0) + model.predict(mirrored, verbose=0)
    ) / 2
    both = replace(cfg, teacher=f"{npy},{trained / 'model.keras'}")
    out = tmp_path / "student"
    out.mkdir()
    targets, _ = teacher_targets(both, train.x, train.y, 3, out, data.labels)
    expected = (stack.astype(np.float32).sum(0) + own) / 3
    np.testing.assert_allclose(targets, expected / expected.sum(1, keepdims=True), atol=1e-4)
    # Made from other images: refused by its shape. With other labels: by its summary.json.
    np.save(tmp_path / "short.npy", stack[:, :-1])
    with pytest.raises(ValueError, match="other images or labels"):
        teacher_targets(
            replace(cfg, teacher=str(tmp_path / "short.npy")),
            train.x,
            train.y,
            3,
            tmp_path,
            data.labels,
        )
    (npy.parent / "summary.json").write_text(
        json.dumps({"meta": {"labels": ["light", "dark", "stripes"]}})
    )
    with pytest.raises(ValueError, match="labels"):
        teacher_targets(replace(cfg, teacher=str(npy)), train.x, train.y, 3, tmp_path, data.labels)
    with pytest.raises(ValueError, match="not a .npy"):
        replace(cfg, teacher=str(npy), teacher_online=True)


def test_online_teacher_targets_each_augmented_view(data_dir, tmp_path):
    """With teacher_online the soft target is the teachers' answer for the augmented batch the
    student trains on (with its mirror, not a cached answer for the clean image); .tflite
    teachers run in the edge runtime on the batch rounded to uint8."""
    from edgefer.classifier import Classifier
    from edgefer.convert import convert
    from train.augment import train_dataset
    from train.fit import online_teacher, prepare_data

    trained = tmp_path / "t"
    fit(
        config(data_dir, arch="edge", arch_kwargs={"stem": (4,), "widths": (8,)}),
        trained,
        log=lambda _: None,
    )
    path = str(trained / "model.keras")
    tflite = tmp_path / "t.tflite"
    convert(trained / "model.keras", tflite, quantize="int8", calibration_dir=data_dir / "train")
    cfg = config(
        data_dir,
        teacher=f"{path},{tflite}",
        teacher_online=True,
        teacher_weight=0.4,
        teacher_temperature=2.0,
    )
    data = prepare_data(cfg)
    train, val = data.splits["train"], data.splits["val"]
    teach = online_teacher(cfg, 3, data.labels)
    weights = np.ones(len(train.y), np.float32)
    args = (train.x, train.y, weights, 3, 8, cfg.augment, cfg.seed, 1)
    plain = list(train_dataset(*args))
    taught = list(train_dataset(*args, teach, 0.4))
    teacher = keras.models.load_model(path)
    with Classifier.create_from_model_path(tflite, num_threads=1) as int8:
        for (x, y, w), (tx, ty, tw) in zip(plain, taught, strict=True):
            np.testing.assert_array_equal(tx, x)
            np.testing.assert_array_equal(tw, w)
            p = 0
            for view in (x.numpy(), x.numpy()[:, :, ::-1]):
                rounded = np.clip(np.rint(view), 0, 255).astype(np.uint8)
                p += (teacher.predict(view, verbose=0) + int8.predict(rounded)) / 4
            p = p**0.5
            expected = 0.6 * y.numpy() + 0.4 * p / p.sum(1, keepdims=True)
            np.testing.assert_allclose(ty, expected, atol=1e-5)
        clean = 0
        for view in (val.x, np.ascontiguousarray(val.x[:, :, ::-1])):
            clean += teacher.predict(view.astype(np.float32), verbose=0) + int8.predict(view)
    # A run with it logs the teachers' val accuracy and caches no per-image targets.
    lines = []
    state = fit(replace(cfg, epochs=1), tmp_path / "run", log=lines.append)
    assert state["epoch"] == 1
    assert any("online (each augmented batch and its mirror)" in line for line in lines)
    accuracy = np.mean(clean.argmax(1) == val.y)
    assert any(f"val accuracy {accuracy:.4f}" in line for line in lines)
    assert not (tmp_path / "run" / "teacher-train.npy").exists()
    with pytest.raises(ValueError, match="needs a teacher"):
        replace(cfg, teacher="")
    swapped = ("light", "dark", "stripes")
    with pytest.raises(ValueError, match="labels"):
        online_teacher(replace(cfg, teacher=str(tflite)), 3, swapped)


def test_report_and_average_say_what_their_data_leaves_out(data_dir, tmp_path):
    # They made the run's split again without a word of what was left out of it (unreadable
    # files; with one folder, images added since or gone), as fit, split and baselines say.
    from train.average import average_run
    from train.report import report_run

    out = tmp_path / "run"
    small = {"stem": (4,), "widths": (8,)}
    fit(config(data_dir, arch_kwargs=small, keep_from=1), out, log=lambda _: None)
    (data_dir / "val" / LABELS[0] / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for run in (
        lambda log: report_run(out, log=log, results=tmp_path / "results.md"),
        lambda log: average_run(out, tmp_path / "avg", first=1, log=log),
    ):
        lines = []
        run(lines.append)
        assert any(line.startswith("warning: val: 1 unreadable") for line in lines), lines
    lines = []  # fit's own report at its end: fit has just logged them
    report_run(out, log=lines.append, results=tmp_path / "results.md", notes=False)
    assert not any(line.startswith("warning") for line in lines)


def test_a_run_whose_data_folder_moved_is_one_line_for_each_command(data_dir, tmp_path):
    # report ended in a FileNotFoundError traceback; the others said "[Errno 2] No such file".
    from typer.testing import CliRunner

    from train.cli import app

    out = tmp_path / "run"
    fit(config(data_dir, arch_kwargs={"stem": (4,), "widths": (8,)}, keep_from=1), out, log=print)
    data_dir.rename(tmp_path / "moved")
    for args in (
        ["report", str(out), "--results", str(tmp_path / "results.md")],
        ["average", str(out), "--out", str(tmp_path / "avg")],
        ["split", str(out), "--out", str(tmp_path / "parts")],
        ["fit", "--resume", "--out", str(out), "--epochs", "2"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"the run's data folder {data_dir} is not there" in result.output, args
        assert "Traceback" not in result.output


def test_keep_from_and_average_run(data_dir, tmp_path):
    from train.average import average_run, average_weights, refresh_batchnorm

    small = {"stem": (4,), "widths": (8,)}
    cfg = config(data_dir, arch="edge", arch_kwargs=small, epochs=3, keep_from=2)
    out = tmp_path / "kept"
    fit(cfg, out, log=lambda _: None)
    assert sorted(p.name for p in out.glob("last-*.keras")) == [
        "last-002.keras",
        "last-003.keras",
    ]
    a, b = (keras.models.load_model(out / f"last-00{e}.keras") for e in (2, 3))
    mean = average_weights([a, b])
    for wa, wb, wm in zip(a.get_weights(), b.get_weights(), mean.get_weights(), strict=True):
        np.testing.assert_allclose(wm, (wa + wb) / 2, rtol=1e-6)
    from train.archs import build

    with pytest.raises(ValueError, match="one architecture"):
        average_weights([a, build("edge", (16, 16, 1), 3, stem=(4,), widths=(12,))])

    # Batch-norm statistics become those of the data passed in.
    x = np.random.default_rng(1).uniform(0, 255, (40, 16, 16, 1)).astype(np.float32)
    refresh_batchnorm(mean, x, batch_size=16)
    first_bn = next(la for la in mean.layers if isinstance(la, keras.layers.BatchNormalization))
    conv = keras.Model(mean.inputs, first_bn.input)
    feats = conv.predict(x, verbose=0).reshape(-1, first_bn.moving_mean.shape[0])
    batches = [conv.predict(x[i : i + 16], verbose=0) for i in (0, 16, 32)]
    expected = np.mean([f.reshape(-1, feats.shape[1]).mean(0) for f in batches], axis=0)
    np.testing.assert_allclose(first_bn.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert first_bn.momentum == 0.99  # restored

    (out / "last-004.tmp.keras").write_bytes(b"a save cut off")
    lines = []
    metrics = average_run(out, tmp_path / "avg", first=2, log=lines.append)
    assert "epochs 2-3" in lines[0] and 0.0 <= metrics["accuracy"] <= 1.0
    one = []  # a single checkpoint was "averaging 1 checkpoints", with no word more
    average_run(out, tmp_path / "one", first=3, log=one.append)
    assert one[0].startswith("warning: only epoch 3's checkpoint is kept in epochs 3..: ")
    spec = ModelSpec.from_json((tmp_path / "avg" / "spec.json").read_text())
    assert spec.metadata["averaged_epochs"] == [2, 3] and "best_epoch" not in spec.metadata
    kept = average_run(out, tmp_path / "avg-bn", first=2, log=lines.append, refresh=False)
    assert "averaged batch-norm statistics" in lines[-1]
    logged = float(lines[1].split("averaged ones gave ")[1][:6])
    assert kept["accuracy"] == pytest.approx(logged, abs=1e-4)
    with pytest.raises(FileNotFoundError):
        average_run(out, tmp_path / "none", first=9, log=lines.append)
    from edgefer.convert import convert

    done = convert(
        tmp_path / "avg" / "model.keras", tmp_path / "a.tflite", "int8", data_dir / "train"
    )
    assert done.spec.metadata["averaged_epochs"] == [2, 3]


def test_swa_schedule_holds_the_rate_and_keeps_the_tail(data_dir, tmp_path):
    from train.fit import lr_schedule

    cfg = config(data_dir, epochs=10, warmup_epochs=2, lr=1e-3, swa_epochs=3, swa_lr_ratio=0.25)
    schedule = lr_schedule(cfg, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 20, 45, 70, 85, 99)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(1e-3)  # warm-up, then the peak
    assert 0.25e-3 < rates[2] < 1e-3  # cosine
    assert rates[3:] == pytest.approx([0.25e-3] * 3)  # held from epoch 8 on
    plain = lr_schedule(replace(cfg, swa_epochs=0), steps_per_epoch=10)
    assert float(plain(99)) < 1e-5
    with pytest.raises(ValueError, match="swa_epochs"):
        replace(cfg, swa_epochs=8)
    replace(cfg, epochs=1, warmup_epochs=2, swa_epochs=0)  # a short run without SWA is fine
    small = {"stem": (4,), "widths": (8,)}
    tail = config(data_dir, arch_kwargs=small, epochs=3, warmup_epochs=0, swa_epochs=2)
    fit(tail, tmp_path / "swa", log=lambda _: None)
    kept = sorted(p.name for p in (tmp_path / "swa").glob("last-*.keras"))
    assert kept == ["last-002.keras", "last-003.keras"]


def test_a_run_no_longer_than_its_warm_up_still_reaches_its_peak_and_decays(data_dir):
    # `fit --epochs 1` (a smoke run) against the default 2 warm-up epochs trained every step
    # below the peak rate and began at 0 (the log's first line: lr 0.00e+00).
    from train.fit import lr_schedule

    one = lr_schedule(config(data_dir, epochs=1, warmup_epochs=2, lr=1e-3), steps_per_epoch=10)
    assert float(one(0)) == pytest.approx(1e-3) and float(one(9)) < 1e-4
    two = lr_schedule(config(data_dir, epochs=2, warmup_epochs=2, lr=1e-3), steps_per_epoch=10)
    assert float(two(0)) == 0.0 and float(two(10)) == pytest.approx(1e-3)  # 1 epoch of warm-up
    assert float(two(19)) < 1e-4
    with pytest.raises(ValueError, match="warmup_epochs"):
        config(data_dir, warmup_epochs=-1)


def test_an_epochs_lr_is_the_rate_it_ended_on_not_0_at_the_start_of_warm_up(data_dir, tmp_path):
    # The rate was read before the epoch ran: the first warm-up epoch logged (and recorded in
    # its history row) lr 0.00e+00, as if it had not trained, though it rose to 0.8 of the peak.
    from train.fit import lr_schedule

    small = {"stem": (4,), "widths": (8,)}
    cfg = config(data_dir, arch="edge", arch_kwargs=small, epochs=2, warmup_epochs=1, lr=1e-3)
    lines = []
    state = fit(cfg, tmp_path / "run", log=lines.append)
    steps = -(-36 // 8)  # per epoch: 36 train images in batches of 8
    schedule = lr_schedule(cfg, steps)
    want = [float(schedule(steps - 1)), float(schedule(2 * steps - 1))]  # each epoch's last step
    assert want[0] == pytest.approx(8e-4)  # 4 of the 5 warm-up steps
    assert [r["lr"] for r in state["history"]] == pytest.approx(want)
    logged = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(" lr ")[1].split()[0] for line in logged] == [f"{v:.2e}" for v in want]


def test_fold_averages_members_into_one_convertible_model(data_dir, tmp_path):
    from typer.testing import CliRunner

    from edgefer.classifier import Classifier
    from edgefer.convert import convert
    from train.cli import app
    from train.flops import count_flops

    small = {"stem": (4,), "widths": (8,)}
    runs = [tmp_path / "a", tmp_path / "b"]
    fit(config(data_dir, arch="edge", arch_kwargs=small), runs[0], log=lambda _: None)
    fit(config(data_dir, arch="seed", seed=2), runs[1], log=lambda _: None)  # any members
    paths = [str(r / "model.keras") for r in runs]
    result = CliRunner().invoke(app, ["fold", *paths, "--out", str(tmp_path / "ens")])
    assert result.exit_code == 0, result.output
    members = [keras.models.load_model(p) for p in paths]
    folded = keras.models.load_model(tmp_path / "ens" / "model.keras")
    from train.fit import prepare_data

    images = prepare_data(config(data_dir)).splits["val"].x  # uint8, as the device gets them
    x = images.astype(np.float32)
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, atol=1e-5)
    assert count_flops(folded) == sum(count_flops(m) for m in members) > 0
    spec = ModelSpec.from_json((tmp_path / "ens" / "spec.json").read_text())
    assert spec.labels == LABELS and spec.metadata["ensemble_of"] == paths
    # The ensemble's own size, not member a's (whose arch, params and val accuracy it carried).
    assert spec.metadata["params"] == folded.count_params() and spec.metadata["arch"] == "ensemble"
    assert "val_accuracy" not in spec.metadata and "seed" not in spec.metadata
    for args, message in (
        ([paths[0], paths[0]], "given twice"),
        ([*paths, "--out", str(runs[0])], "must not be a member's folder"),
    ):
        bad = CliRunner().invoke(app, ["fold", *args] + ([] if "--out" in args else ["--out", "x"]))
        assert bad.exit_code == 2 and message in bad.output, bad.output
    # It converts and runs on the device side like any single model.
    tflite = tmp_path / "ens.tflite"
    convert(tmp_path / "ens" / "model.keras", tflite, calibration_dir=data_dir / "train")
    with Classifier.create_from_model_path(tflite, num_threads=1) as classifier:
        assert classifier.labels == LABELS
        agree = classifier.predict(images).argmax(1) == expected.argmax(1)
        assert agree.mean() >= 0.8
    # Members fed or labelled differently are refused, as is a lone model.
    spec_b = runs[1] / "spec.json"
    relabelled = json.loads(spec_b.read_text())
    relabelled["labels"] = list(reversed(LABELS))
    spec_b.write_text(json.dumps(relabelled))
    for args in (paths, paths[:1]):
        result = CliRunner().invoke(app, ["fold", *args, "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and "error:" in result.output
    spec_b.unlink()  # a member without its spec.json, as edgefer convert says it
    result = CliRunner().invoke(app, ["fold", *paths, "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "no model spec" in result.output


def test_resume_says_what_it_ignores_and_when_nothing_is_left(data_dir, tmp_path):
    # It exited 0 after "resumed after epoch 1", training nothing and saying nothing.
    from typer.testing import CliRunner

    from train.cli import app

    out = tmp_path / "run"
    fit(config(data_dir, arch="seed"), out, log=lambda _: None)
    args = ["fit", "--resume", "--out", str(out), "--epochs", "5", "--lr", "0.01", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--epochs, --lr ignored with --resume" in text
    assert "the run is complete (1/1 epochs): nothing to train" in text
    assert json.loads((out / "config.json").read_text())["epochs"] == 1
    # A complete run is reported again on --resume: its row goes to --results, not docs/.
    table = tmp_path / "elsewhere" / "results.md"
    result = CliRunner().invoke(
        app, ["fit", "--resume", "--out", str(out), "--results", str(table)]
    )
    assert result.exit_code == 0, result.output
    assert "| run | seed |" in table.read_text()
    assert "ignored" not in result.output  # it was said to be, and then used
    assert not (tmp_path / "docs").exists()


def test_fit_usage_errors_are_one_line_exit_2(data_dir, tmp_path):
    # Each was a traceback and exit 1, several only after the data had loaded.
    from typer.testing import CliRunner

    from train.cli import app

    base = ["fit", str(data_dir), "--out", str(tmp_path / "r"), "--epochs", "1"]
    cases = {
        "--precision fp16": "precision must be",
        "--channels 2": "channels must be",
        "--augment heavy": "--augment must be one of",
        "--augment-args {blur:1}": "--augment-args is not JSON",
        '--augment-args {"sharpen":1}': "--augment-args:",
        '--augment-args {"lowres":2}': "--augment-args: lowres must be in [0, 1)",
        "--arch-args [1]": "--arch-args must be a JSON object",
        "--classes top,left,top": "--classes names top more than once",
        "--size abc": "--size must be N or HxW",
        "--size 0": "--size must be N or HxW",  # a ZeroDivisionError in Pillow's resize
        "--size 96x-4": "--size must be N or HxW",
        "--epochs 0": "epochs must be 1 or more, not 0",  # these three were tracebacks
        "--batch-size 0": "batch_size must be 1 or more, not 0",
        "--limit -5": "limit must be 0 (all images) or more, not -5",
        "--teacher-online": "teacher_online needs a teacher",
        f"--teacher {tmp_path}": "--teacher must be a .keras, .tflite or .npy file",
        f"--init {tmp_path}": "--init must be a trained .keras model",
    }
    for option, message in cases.items():
        flag, value = option.split(" ", 1) if " " in option else (option, None)
        result = CliRunner().invoke(app, base + [flag] + ([value] if value else []))
        assert result.exit_code == 2 and message in result.output, (option, result.output)
        assert "Traceback" not in result.output
    not_a_folder = CliRunner().invoke(app, ["fit", str(tmp_path / "x.tflite"), "--out", "r2"])
    assert not_a_folder.exit_code == 2 and "DATA_DIR is not a folder" in not_a_folder.output
    report = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert report.exit_code == 2 and "not a fit run" in report.output
    # baselines and split ended these in tracebacks.
    for args, message in (
        (["baselines", str(data_dir), "--channels", "2"], "--channels must be 1 or 3"),
        (["baselines", str(data_dir), "--classes", "top,nope"], "no such class folder"),
        (["baselines", str(data_dir), "--size", "0"], "--size must be N or HxW"),
        (["archs", "--size", "0x48"], "--size must be N or HxW"),
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_cached_teacher_targets_belong_to_their_images(data_dir, tmp_path):
    # A run restarted in the same folder with other --classes reused the cached targets (and
    # skipped the teacher's label check); now the cache is keyed on the images and labels too.
    from train.fit import prepare_data, teacher_targets

    out = tmp_path / "t"
    fit(config(data_dir, arch="seed"), out, log=lambda _: None)
    cfg = config(data_dir, teacher=str(out / "model.keras"))
    data = prepare_data(cfg)
    train = data.splits["train"]
    first, _ = teacher_targets(cfg, train.x, train.y, len(LABELS), tmp_path, LABELS)
    again, _ = teacher_targets(cfg, train.x, train.y, len(LABELS), tmp_path, LABELS)
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="labels"):
        reordered = tuple(reversed(LABELS))
        teacher_targets(cfg, train.x, train.y, len(LABELS), tmp_path, reordered)


def test_init_starts_from_a_trained_model_and_refuses_another_architecture(data_dir, tmp_path):
    from train.fit import open_run

    small = {"stem": (4,), "widths": (8, 16), "blocks": (1, 1)}
    first = tmp_path / "first"
    fit(config(data_dir, arch="edge", arch_kwargs=small, seed=1), first, log=lambda _: None)
    trained = keras.models.load_model(first / "model.keras").get_weights()
    cfg = config(data_dir, arch="edge", arch_kwargs=small, seed=2, init=str(first / "model.keras"))
    (tmp_path / "opened").mkdir()
    model, state = open_run(cfg, tmp_path / "opened", False, LABELS, steps=5)
    assert state["epoch"] == 0 and int(model.optimizer.iterations) == 0  # a fresh schedule
    for a, b in zip(trained, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # batch-norm statistics included
    lines = []
    fit(cfg, tmp_path / "warm", log=lines.append)
    assert any("weights from" in line and "warm start" in line for line in lines)
    spec = ModelSpec.from_json((tmp_path / "warm" / "spec.json").read_text())
    assert spec.metadata["init"] == str(first / "model.keras")
    other = replace(cfg, arch_kwargs={"stem": (4,), "widths": (8, 24), "blocks": (1, 1)})
    with pytest.raises(ValueError, match="another architecture"):
        fit(other, tmp_path / "other", log=lambda _: None)
    assert not (tmp_path / "other" / "config.json").exists()
    relabelled = replace(cfg, classes=("light", "dark", "stripes"))
    with pytest.raises(ValueError, match="has labels"):
        fit(relabelled, tmp_path / "relabelled", log=lambda _: None)


def test_grow_copies_the_smaller_model_and_starts_the_new_stage_at_zero(data_dir, tmp_path):
    from train.fit import open_run

    small = {"stem": (4,), "widths": (8, 16), "blocks": (1, 1)}
    first = tmp_path / "first"
    fit(config(data_dir, arch="edge", arch_kwargs=small, seed=1), first, log=lambda _: None)
    source = keras.models.load_model(first / "model.keras")
    bigger = {"stem": (4,), "widths": (8, 16, 16), "blocks": (1, 1, 1)}
    cfg = config(
        data_dir, arch="edge", arch_kwargs=bigger, init=str(first / "model.keras"), grow=True
    )
    (tmp_path / "opened").mkdir()
    model, state = open_run(cfg, tmp_path / "opened", False, LABELS, steps=5)
    assert state["init_fresh_layers"] == 4  # the new stage: two conv + two batch-norm
    theirs = [la for la in source.layers if la.weights]
    ours = [la for la in model.layers if la.weights]
    kept = ours[: len(theirs) - 1] + ours[-1:]  # all but the new stage, the classifier last
    for a, b in zip(theirs, kept, strict=True):
        for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(x, y)
    last_add = [la for la in model.layers if isinstance(la, keras.layers.Add)][-1]
    branch = last_add.input[0]._keras_history.operation
    assert isinstance(branch, keras.layers.BatchNormalization)
    np.testing.assert_array_equal(branch.gamma.numpy(), 0.0)
    lines = []
    fit(cfg, tmp_path / "grown", log=lines.append)
    assert any("grown: 4 new weighted layers" in line for line in lines)
    spec = ModelSpec.from_json((tmp_path / "grown" / "spec.json").read_text())
    assert spec.metadata["init_grown"] is True
    wider = replace(cfg, arch_kwargs={"stem": (4,), "widths": (8, 24, 16), "blocks": (1, 1, 1)})
    with pytest.raises(ValueError, match="not a part of this architecture"):
        fit(wider, tmp_path / "wider", log=lambda _: None)
    with pytest.raises(ValueError, match="grow needs init"):
        replace(cfg, init="")


def one_folder(data_dir, tmp_path):
    """``data_dir``'s train class folders as one folder of classes, with no split given."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for label in LABELS:
        (data_dir / "train" / label).rename(flat / label)
    return flat


def test_a_warm_restart_on_one_folder_keeps_the_split_its_model_was_trained_on(tmp_path, data_dir):
    # A run on one folder (split 70/15/15 by its split seed) warm-started with its own seeds,
    # as the docs do, split afresh: most of its val and test images were the model's training
    # images.
    flat = one_folder(data_dir, tmp_path)
    small = {"stem": (4,), "widths": (8, 16), "blocks": (1, 1)}
    first = tmp_path / "first"
    fit(config(flat, arch="edge", arch_kwargs=small, split_seed=1), first, log=lambda _: None)
    cfg = config(flat, arch="edge", arch_kwargs=small, seed=2, init=str(first / "model.keras"))
    lines: list[str] = []
    fit(cfg, tmp_path / "warm", log=lines.append)
    split = json.loads((first / "split.json").read_text())
    assert json.loads((tmp_path / "warm" / "split.json").read_text()) == split
    assert any(f"split as {first}" in line for line in lines), lines
    spec = ModelSpec.from_json((tmp_path / "warm" / "spec.json").read_text())
    assert spec.metadata["split"] == "stratified 70/15/15 seed 1" and spec.metadata["seed"] == 2
    assert FitConfig.load(tmp_path / "warm").split_seed == 1  # report, split, average: the same
    # Another folder's model (or one without its run's split.json) leaves it to --split-seed.
    (first / "split.json").unlink()
    fit(cfg, tmp_path / "fresh", log=lambda _: None)
    assert json.loads((tmp_path / "fresh" / "split.json").read_text()) != split


def test_fit_records_its_split_seed_apart_from_its_seed(data_dir, tmp_path, monkeypatch):
    # --seed also chose one folder's split: runs of two seeds were scored on other images.
    from typer.testing import CliRunner

    import train.fit
    from train.cli import app

    given = []
    monkeypatch.setattr(train.fit, "fit", lambda cfg, out, **_: given.append(cfg) or {"epoch": 0})
    base = ["fit", str(data_dir), "--out", str(tmp_path / "r"), "--no-report"]
    for extra in (["--seed", "1"], ["--seed", "2"], ["--seed", "2", "--split-seed", "7"]):
        ran = CliRunner().invoke(app, [*base, *extra])
        assert ran.exit_code == 0, ran.output
    assert [(c.seed, c.split_seed) for c in given] == [(1, 0), (2, 0), (2, 7)]


def test_a_teacher_trained_on_the_runs_val_and_test_images_is_named(tmp_path, data_dir):
    # A teacher from a run that split the folder by another seed (every run from before
    # split_seed, whose seed was its split's) had trained on most of the student's val and
    # test images: its val accuracy was inflated, and nothing said so.
    flat = one_folder(data_dir, tmp_path)
    small = {"stem": (4,), "widths": (8, 16), "blocks": (1, 1)}
    teacher = tmp_path / "teacher"
    fit(config(flat, arch="edge", arch_kwargs=small, split_seed=1), teacher, log=lambda _: None)
    cfg = config(flat, arch="edge", arch_kwargs=small, teacher=str(teacher / "model.keras"))
    lines: list[str] = []
    fit(cfg, tmp_path / "student", log=lines.append)
    warned = [line for line in lines if line.startswith(f"warning: teacher {teacher}")]
    assert len(warned) == 1, lines
    assert "its run split the folder by seed 1, this one by 0" in warned[0], warned
    assert "--split-seed 1 keeps them apart" in warned[0], warned
    # A teacher on this run's split, or whose run cannot be told, is not named.
    from train.fit import prepare_data, teachers_seen

    same = replace(cfg, split_seed=1)
    assert not teachers_seen(same, prepare_data(same))
    (teacher / "split.json").unlink()
    assert not teachers_seen(cfg, prepare_data(cfg))

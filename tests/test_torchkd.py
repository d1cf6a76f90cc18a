"""train.torchkd (PyTorch teachers and student, for a GPU) and train.fromtorch (its student into
the Keras edge model), run here on the CPU at toy sizes."""

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the dev extra installs torch on x86_64")

from train import torchkd  # noqa: E402
from train.augconfig import PRESETS, Augment  # noqa: E402
from train.torchkd import EdgeNet, augment  # noqa: E402

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_pack_encoding_is_lossless():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (7, 48, 48), dtype=np.uint8)
    grey[0] = 255  # runs of equal pixels, the wrap-around of the differences
    rgb = rng.integers(0, 256, (3, 10, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(torchkd._decode(torchkd._encode(grey), 1), grey)
    np.testing.assert_array_equal(torchkd._decode(torchkd._encode(rgb), 3), rgb)


def test_flip_alone_mirrors_each_image_exactly_and_full_stays_in_range():
    """The affine resample maps pixel centres onto pixel centres: with only the flip on, each
    image comes back as itself or its exact mirror, about half of each."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(0, 255, (64, 1, 12, 12)).astype(np.float32))
    g = torch.Generator().manual_seed(0)
    flip_only = Augment(rotate=0, zoom=0, shift=0, brightness=0, contrast=0, erase=0)
    y = augment(x, flip_only, g)
    same = (y - x).abs().amax((1, 2, 3)) < 1e-3
    mirrored = (y - x.flip(3)).abs().amax((1, 2, 3)) < 1e-3
    assert bool((same | mirrored).all()) and 16 < int(mirrored.sum()) < 48
    full = augment(x, replace(PRESETS["full"], erase=1.0), g)
    assert full.shape == x.shape and float(full.min()) >= 0 and float(full.max()) <= 255
    assert float((full - x).abs().mean()) > 1.0


def test_teachers_ensemble_over_image_and_mirror_in_one_pass_per_teacher():
    """mean_softmax runs each model once over the batch and its mirror stacked; the result is
    the mean of the per-model, per-view softmaxes (which a one-sided model tells apart)."""
    torch.manual_seed(0)
    models = [EdgeNet(7, widths=(8, 16)).eval(), torchkd.Teacher(7).eval()]
    x = torch.rand(5, 1, 16, 16) * 255
    x[:, :, :, :8] = 0  # the left half dark: an image and its mirror get different answers
    with torch.no_grad():
        got = torchkd.mean_softmax(models, x, temperature=2.0)
        per = [torch.softmax(m(v) / 2.0, 1) for m in models for v in (x, x.flip(3))]
        one_sided = torchkd.mean_softmax(models, x, temperature=2.0, mirror=False)
    assert torch.allclose(got, torch.stack(per).mean(0), atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(5))
    assert float((per[0] - per[1]).abs().max()) > 1e-4  # the views do differ
    assert torch.allclose(one_sided, (per[0] + per[2]) / 2, atol=1e-6)


def test_student_copies_into_the_keras_edge_model_with_the_same_probabilities(tmp_path):
    from train.fromtorch import port

    torch.manual_seed(0)
    net = EdgeNet(7, widths=(8, 16))
    with torch.no_grad():  # batch-norm statistics and scales away from their initial values
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    ckpt = tmp_path / "student.pt"
    torch.save({"state_dict": net.state_dict(), "config": net.config, "labels": LABELS}, ckpt)
    r = port(ckpt, tmp_path / "keras")
    assert r["max_difference"] < 1e-5
    spec = json.loads((tmp_path / "keras" / "spec.json").read_text())
    assert spec["labels"] == LABELS and spec["metadata"]["arch_args"]["widths"] == [8, 16]
    from train import archs

    assert r["params"] == archs.edge((48, 48, 1), 7, widths=(8, 16)).count_params()
    # And back: the Keras model into a student checkpoint gives the same weights again.
    from train.fromtorch import to_torch

    back = to_torch(tmp_path / "keras" / "model.keras", tmp_path / "back.pt")
    assert back["max_difference"] < 1e-5 and back["fresh_layers"] == 0
    again = torch.load(tmp_path / "back.pt")
    assert again["labels"] == LABELS and again["config"] == net.config
    for name, value in net.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            torch.testing.assert_close(again["state_dict"][name], value.float())
    # Grown into a third stage: the new residual branch (2 convs, 2 batch-norms) starts at zero.
    grown = to_torch(
        tmp_path / "keras" / "model.keras", tmp_path / "grown.pt", {"widths": [8, 16, 16]}
    )
    assert grown["fresh_layers"] == 4 and grown["widths"] == [8, 16, 16]
    sd = torch.load(tmp_path / "grown.pt")["state_dict"]
    assert float(sd["stages.2.b.1.weight"].abs().max()) == 0.0
    torch.testing.assert_close(sd["stages.1.b.1.weight"], net.stages[1].b[1].weight.detach())
    with pytest.raises(ValueError, match="not a part of this architecture"):
        to_torch(tmp_path / "keras" / "model.keras", tmp_path / "x.pt", {"widths": [8, 32]})
    # A checkpoint whose weights do not fit the architecture it names is refused.
    bad = dict(net.config, widths=[8, 32])
    torch.save({"state_dict": net.state_dict(), "config": bad, "labels": LABELS}, ckpt)
    with pytest.raises(RuntimeError, match="size mismatch"):
        port(ckpt, tmp_path / "bad")


def _toy_pack(tmp_path, n: int = 48, nv: int = 16):
    """A pack of ``n`` train and ``nv`` val random images, as ``pack`` writes it."""
    rng = np.random.default_rng(2)
    meta = {
        "data": "synthetic",
        "labels": LABELS,
        "protocol": "folders train/val",
        "duplicates": {},
        "size": 48,
        "channels": 1,
        "n_train": n,
        "n_val": nv,
    }
    pack = tmp_path / "pack.npz"
    np.savez(
        pack,
        x_train=torchkd._encode(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)),
        y_train=rng.integers(0, 7, n),
        x_val=torchkd._encode(rng.integers(0, 256, (nv, 48, 48), dtype=np.uint8)),
        y_val=rng.integers(0, 7, nv),
        class_weights=np.ones(7, np.float32),
        meta=np.asarray(json.dumps(meta)),
    )
    return pack


@pytest.mark.slow
def test_run_trains_teachers_then_a_student_and_writes_the_few_files_a_device_returns(
    tmp_path,
):
    n, nv = 48, 16
    pack = _toy_pack(tmp_path, n, nv)
    out = tmp_path / "out"
    torchkd.main(
        [
            "run",
            str(pack),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--device",
            "cpu",
            "--batch",
            "16",
            "--teacher-batch",
            "16",
            "--teacher-seeds",
            "1",
            "--teacher-epochs",
            "3",
            "--student-epochs",
            "3",
            "--widths",
            "8,16",
        ]
    )
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8  # what a lent machine sends back
    assert {"run.log", "summary.json", "student-best.pt", "student-last.pt"} <= set(files)
    assert np.load(out / "teachers-train.npy").shape == (1, n, 7)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3 and len(summary["history"]) == 3
    assert summary["teacher_runs"]["1"]["epochs"] == 3
    assert summary["meta"]["labels"] == LABELS
    ck = torch.load(out / "student-last.pt")
    assert ck["config"]["widths"] == [8, 16] and ck["labels"] == LABELS
    # A second run starts its student from that one (no teachers: trained on the labels).
    again = tmp_path / "again"
    common = ["--work", str(tmp_path / "w2"), "--device", "cpu", "--batch", "16"]
    common += ["--teacher-seeds", "", "--student-epochs", "1", "--widths", "8,16"]
    init = ["--student-init", str(out / "student-last.pt")]
    torchkd.main(["run", str(pack), "--out", str(again), *common, *init])
    log = (again / "run.log").read_text()
    last_val = summary["history"][-1]["raw"]
    assert f"student starts from {out / 'student-last.pt'}: val {last_val:.4f}" in log
    assert json.loads((again / "summary.json").read_text())["student_init"].endswith("last.pt")
    # A student of other widths is refused before any teacher trains.
    wrong = [*common[:-1], "8,32", "--teacher-seeds", "1", "--teacher-epochs", "1"]
    with pytest.raises(SystemExit, match="not widths"):
        torchkd.main(["run", str(pack), "--out", str(tmp_path / "x"), *wrong, *init])
    assert not (tmp_path / "w2" / "teacher-1.log").exists()


def test_to_torch_usage_errors_are_one_line_with_status_2(tmp_path):
    from typer.testing import CliRunner

    from train import archs
    from train.cli import app

    model = tmp_path / "model.keras"
    archs.edge((48, 48, 1), 7, widths=(8, 16)).save(model)
    runner = CliRunner()
    no_spec = runner.invoke(app, ["to-torch", str(model), "--out", str(tmp_path / "a.pt")])
    assert no_spec.exit_code == 2 and "no spec.json beside it" in no_spec.output
    bad_json = ["to-torch", str(model), "--out", str(tmp_path / "b.pt"), "--arch-args", "{"]
    result = runner.invoke(app, bad_json)
    assert result.exit_code == 2 and "--arch-args is not JSON" in result.output
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_to_torch_names_a_model_that_is_no_student_in_its_own_words(tmp_path):
    # A `seed` model, or an edge model of other widths, was "--init ... another architecture
    # ... for this run's": fit's words; to-torch has no --init and no run.
    from typer.testing import CliRunner

    from edgefer.spec import ModelSpec
    from train import archs
    from train.cli import app

    labels = tuple("abcdefg")
    for arch, model in (
        ("seed", archs.seed((48, 48, 1), 7)),
        ("edge", archs.edge((48, 48, 1), 7, widths=(8, 16))),
    ):
        folder = tmp_path / arch
        folder.mkdir()
        model.save(folder / "model.keras")
        spec = ModelSpec(labels=labels, input_size=(48, 48), channels=1, metadata={"arch": arch})
        (folder / "spec.json").write_text(spec.to_json())
        out = tmp_path / f"{arch}.pt"
        result = CliRunner().invoke(
            app, ["to-torch", str(folder / "model.keras"), "--out", str(out)]
        )
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "--init" not in text and "this run" not in text, text
        assert ("'seed' model" if arch == "seed" else "the student's (stem") in text, text
        assert not out.exists()


def test_pack_holds_a_dataset_to_edgefers_limit_without_pillows_warning(
    tmp_path, monkeypatch, capsys
):
    # `python -m train.torchkd pack` never imports edgefer.cli or train.cli, which lift
    # Pillow's limit: once the library stopped lifting it at import, a 100 MP image (refused
    # anyway by max_pixels) printed Pillow's DecompressionBombWarning into the pack's output.
    import struct
    import warnings
    import zlib

    from PIL import Image

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0)  # a header only
    huge = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
    huge += struct.pack(">I", zlib.crc32(ihdr)) + b"\x00\x00\x00\x00IDAT" + b"\x00" * 8
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("happy", "sad"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "data" / "train" / "happy" / "huge.png").write_bytes(huge)
    monkeypatch.chdir(tmp_path)  # its cache goes to runs/cache
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's, as a fresh process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torchkd.main(["pack", str(tmp_path / "data"), "--out", str(tmp_path / "pack.npz")])
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert json.loads(capsys.readouterr().out)["n_train"] == 4


def test_pack_names_the_images_it_leaves_out_and_a_split_missing_a_class(
    tmp_path, monkeypatch, capsys
):
    # `pack` dropped the dataset's warnings without a word, where fit and from-tflite log them:
    # an unreadable image left out, a val split with no image of a class.
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, labels in (("train", ("happy", "sad")), ("val", ("happy",))):
        for label in labels:
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "data" / "train" / "sad" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.chdir(tmp_path)  # its cache goes to runs/cache
    torchkd.main(["pack", str(tmp_path / "data"), "--out", str(tmp_path / "pack.npz")])
    out, err = capsys.readouterr()
    assert json.loads(out)["n_train"] == 4  # the report on stdout stays one JSON document
    assert "warning: " in err and "1 unreadable files left out" in err and "cut.png" in err
    assert "warning: val has no images of sad" in err


def test_run_stop_by_ends_the_student_early_with_its_files_written(tmp_path):
    # A lent machine kills its command at a limit, and with it the files not yet written
    # (student-last.pt, summary.json): --stop-by ends the student before that, its files saved.
    pack = _toy_pack(tmp_path)
    out = tmp_path / "out"
    base = ["--work", str(tmp_path / "work"), "--device", "cpu", "--batch", "16"]
    base += ["--teacher-seeds", "", "--widths", "8,16"]
    stop = ["--student-epochs", "50", "--stop-by", "0.001"]
    torchkd.main(["run", str(pack), "--out", str(out), *base, *stop])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == 1 and len(summary["history"]) == 1 and summary["epochs"] == 50
    assert (out / "student-last.pt").exists() and (out / "student-last-ema.pt").exists()
    assert "student 0: stopped after epoch 1 of 50" in (out / "run.log").read_text()
    # Without it, every epoch runs.
    again = tmp_path / "again"
    torchkd.main(["run", str(pack), "--out", str(again), *base, "--student-epochs", "3"])
    summary = json.loads((again / "summary.json").read_text())
    assert summary["stopped"] is None and len(summary["history"]) == 3


def test_pack_splits_one_folder_by_its_split_seed_as_fit_does(tmp_path, monkeypatch, capsys):
    # `pack` split a one-folder dataset by seed 0 whatever fit's --split-seed: the pack's train
    # images (and the teachers-train.npy made from them) were not those of a fit run of split
    # seed 3, with which they still lined up in number.
    from PIL import Image

    from train.data import load_dataset

    rng = np.random.default_rng(0)
    flat = tmp_path / "flat"
    for label in LABELS:
        (flat / label).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(flat / label / f"{i}.png")
    monkeypatch.chdir(tmp_path)  # its cache goes to runs/cache
    out = tmp_path / "pack.npz"
    torchkd.main(["pack", str(flat), "--out", str(out), "--split-seed", "3"])
    meta = json.loads(capsys.readouterr().out)
    assert meta["split_seed"] == 3 and meta["protocol"] == "stratified 70/15/15 seed 3"
    packed = torchkd.load_pack(out)
    assert packed["meta"]["split_seed"] == 3
    fits = {s: load_dataset(flat, (48, 48), 1, split_seed=s).splits for s in (0, 3)}
    for part in ("train", "val"):
        np.testing.assert_array_equal(packed[f"x_{part}"], fits[3][part].x[..., 0])
        np.testing.assert_array_equal(packed[f"y_{part}"], fits[3][part].y)
    assert not np.array_equal(fits[0]["train"].x, fits[3]["train"].x)  # the seed matters here

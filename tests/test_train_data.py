"""Splitting is stratified, deterministic and leak-free; decoding goes through edgefer; cache."""

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import peak_memory
from PIL import Image

from train.config import FitConfig
from train.data import (
    Split,
    cache_key,
    class_weights,
    cross_duplicates,
    has_split_folders,
    keep_rows,
    list_labels,
    load_dataset,
    load_folder,
    permute_rows,
    prepare_data,
    stratified_split,
)


def write_folder(root: Path, counts: dict[str, int], seed: int, size: int = 12) -> Path:
    """``root/<label>/<i>.png`` of random grey noise, all images distinct."""
    rng = np.random.default_rng(seed)
    for label, n in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / label / f"{i:03d}.png")
    return root


def test_stratified_split_keeps_proportions_and_is_disjoint():
    y = np.repeat([0, 1, 2], [100, 40, 20])
    parts = stratified_split(y, (0.7, 0.15, 0.15), seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    for part, frac in zip(parts, (0.7, 0.15, 0.15), strict=True):
        counts = np.bincount(y[part], minlength=3)
        np.testing.assert_allclose(counts, np.array([100, 40, 20]) * frac, atol=1)


def test_stratified_split_is_deterministic_and_seeded():
    y = np.repeat([0, 1], [50, 30])
    a = stratified_split(y, seed=0)
    b = stratified_split(y, seed=0)
    c = stratified_split(y, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_single_folder_is_split_70_15_15(tmp_path):
    root = write_folder(tmp_path / "flat", {"x": 40, "y": 20}, seed=0)
    assert not has_split_folders(root)
    data = load_dataset(root, (12, 12), 1, cache_dir=tmp_path / "cache")
    assert data.labels == ("x", "y") and "70/15/15" in data.protocol
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 42, "val": 9, "test": 9}
    paths = [set(s.paths) for s in data.splits.values()]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    # fit's log named train and val only: the test split made here was never counted.
    assert data.sizes() == "train 42 val 9 test 9"
    assert data.per_class() == (
        "train per class: x 28, y 14; val per class: x 6, y 3; test per class: x 6, y 3"
    )


def test_a_runs_split_is_made_again_after_images_come_and_go(tmp_path):
    # The split was recomputed from what the folder held: one image added or removed moved
    # others between train and val/test, so `train split` (and a resumed run) put training
    # images into the test set without a word.
    root = write_folder(tmp_path / "flat", {"x": 40, "y": 20}, seed=0)
    first = load_dataset(root, (12, 12), 1, cache_dir=tmp_path / "cache")
    members = {n: set(s.paths) for n, s in first.splits.items()}
    assert {n: len(p) for n, p in first.assignment.items()} == {"train": 42, "val": 9, "test": 9}
    (root / "x" / "000.png").unlink()
    write_folder(tmp_path / "more", {"x": 1}, seed=1)
    (tmp_path / "more" / "x" / "000.png").rename(root / "x" / "new.png")
    again = load_dataset(root, (12, 12), 1, cache_dir=tmp_path / "cache")
    moved = {n: set(s.paths) - members[n] for n, s in again.splits.items()}
    assert any(p != {str(root / "x" / "new.png")} and p for p in moved.values())  # the bug
    kept = load_dataset(
        root, (12, 12), 1, cache_dir=tmp_path / "cache", assignment=first.assignment
    )
    gone = str(root / "x" / "000.png")
    assert {n: set(s.paths) for n, s in kept.splits.items()} == {
        n: p - {gone} for n, p in members.items()
    }
    assert any("1 image(s) added" in note for note in kept.notes)
    assert any("1 image(s) of the run's split are gone" in note for note in kept.notes)


def test_cross_split_duplicates_are_counted_and_dropped_from_train(tmp_path):
    root = tmp_path / "data"
    write_folder(root / "train", {"a": 6, "b": 6}, seed=1)
    write_folder(root / "val", {"a": 3, "b": 3}, seed=2)
    # Two train files copy val images (one with the other label), one repeats within train.
    (root / "train/a/dup.png").write_bytes((root / "val/a/000.png").read_bytes())
    (root / "train/b/dup.png").write_bytes((root / "val/a/001.png").read_bytes())
    (root / "train/a/self.png").write_bytes((root / "train/a/002.png").read_bytes())
    data = load_dataset(root, (12, 12), 1)
    assert data.duplicates == {
        "train_in_other": 2,
        "label_conflicts": 1,
        "within_train": 1,
        "dropped_from_train": 2,
    }
    assert len(data.splits["train"]) == 15 - 2
    kept = load_dataset(root, (12, 12), 1, dedupe=False)
    assert len(kept.splits["train"]) == 15
    _, counts = cross_duplicates(data.splits["train"], [data.splits["val"]])
    assert counts["train_in_other"] == 0


def test_classes_pick_subset_in_given_order(tmp_path):
    root = write_folder(tmp_path / "flat", {"a": 10, "b": 10, "c": 10}, seed=0)
    assert list_labels(root) == ("a", "b", "c")
    data = load_dataset(root, (12, 12), 1, classes=("c", "a"))
    assert data.labels == ("c", "a")
    train = data.splits["train"]
    assert all(
        Path(p).parent.name == ("c", "a")[y] for p, y in zip(train.paths, train.y, strict=True)
    )


def test_a_class_is_split_alike_whatever_the_other_classes(tmp_path):
    # One generator shuffled the classes in turn, so --classes in another order, a subset of
    # the classes or an image added to another class gave each class another split with the
    # same seed: on six classes of 40, 21 of a two-class run's 57 train images were in the
    # six-class run's val/test, and baselines (sorted labels) were not on fit's split.
    root = write_folder(tmp_path / "flat", {"a": 20, "b": 20, "c": 20}, seed=0)

    def split_of(classes=None, label="a"):
        data = load_dataset(root, (12, 12), 1, classes=classes, seed=4)
        return {n: sorted(p for p in v if p.startswith(label)) for n, v in data.assignment.items()}

    whole = split_of()
    assert split_of(("c", "b", "a")) == whole
    assert split_of(("c", "a")) == whole
    assert split_of(("c", "b", "a"), "c") == split_of(label="c")
    write_folder(tmp_path / "more", {"b": 1}, seed=1)
    (tmp_path / "more" / "b" / "000.png").rename(root / "b" / "new.png")
    assert split_of() == whole


def test_load_folder_decodes_rgb_and_resizes_and_caches(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 2}, seed=0, size=20)
    cache = tmp_path / "cache"
    split = load_folder(root, ("a", "b"), (8, 10), 3, cache)
    assert split.x.shape == (5, 8, 10, 3) and split.x.dtype == np.uint8
    assert split.y.tolist() == [0, 0, 0, 1, 1]
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_folder(root, ("a", "b"), (8, 10), 3, cache)
    np.testing.assert_array_equal(again.x, split.x)
    # A changed file list invalidates the cache entry.
    (root / "a/000.png").unlink()
    assert len(load_folder(root, ("a", "b"), (8, 10), 3, cache)) == 4


def test_two_runs_decoding_one_folder_at_once_both_get_it(tmp_path, monkeypatch):
    # Two `fit`s started together both decoded the data; their shared temp file name made the
    # second rename fail (FileNotFoundError), ending that run. Here the second load happens
    # inside the first one's cache write, between its savez and its rename.
    import train.data as data_module

    root = write_folder(tmp_path / "d", {"a": 3, "b": 2}, seed=0)
    cache = tmp_path / "cache"
    real_savez, inner = np.savez, []

    def savez_then_another_run(path, **arrays):
        real_savez(path, **arrays)
        if not inner:
            inner.append(None)
            inner[0] = load_folder(root, ("a", "b"), (8, 8), 1, cache)

    monkeypatch.setattr(data_module.np, "savez", savez_then_another_run)
    outer = load_folder(root, ("a", "b"), (8, 8), 1, cache)
    np.testing.assert_array_equal(outer.x, inner[0].x)
    assert [p.name for p in cache.iterdir() if "tmp" in p.name] == []


def test_the_cache_keeps_each_folders_two_most_recently_used_entries(tmp_path):
    # Each new size, channel count or label set of a folder wrote one more uncompressed .npz
    # and none was ever removed: runs/cache only grew (424 MB an entry for 3,000 images at
    # 222x222x3), and so did the temp files of writes that were killed.
    root = write_folder(tmp_path / "d", {"a": 2, "b": 2}, seed=14)
    other = write_folder(tmp_path / "e", {"a": 2, "b": 2}, seed=15)
    cache, labels, said = tmp_path / "cache", ("a", "b"), []

    def entry(folder: Path, side: int) -> Path:
        return cache / (cache_key(folder, labels, (side, side), 1) + ".npz")

    def load(folder: Path, side: int) -> None:
        load_folder(folder, labels, (side, side), 1, cache, said.append)

    load(other, 8)
    load(root, 8)
    load(root, 10)
    os.utime(entry(root, 8), (1000, 1000))
    os.utime(entry(root, 10), (2000, 2000))
    load(root, 8)  # from the cache: now the more recently used of the two
    load(root, 12)  # one entry too many for the folder: the one at 10 goes
    assert sorted(cache.iterdir()) == sorted([entry(other, 8), entry(root, 8), entry(root, 12)])
    assert any(entry(root, 10).name in line and "removed" in line for line in said)
    dead, writing = cache / "a.0.tmp.npz", cache / "b.1.tmp.npz"
    dead.write_bytes(b"half an entry")
    writing.write_bytes(b"an entry being written")
    os.utime(dead, (1, 1))
    np.savez(cache / "older.npz", x=np.zeros(1))  # an entry written before they named a folder
    load(root, 14)
    left = {entry(other, 8), entry(root, 12), entry(root, 14), writing, cache / "older.npz"}
    assert set(cache.iterdir()) == left


@pytest.mark.parametrize("cut", [0, 100, -100], ids=["empty", "head only", "tail cut"])
def test_a_damaged_cache_entry_is_decoded_again_and_replaced(tmp_path, cut):
    # A cache entry cut short (a copy of runs/ that stopped, a disk that lost the tail) ended
    # fit, report and evaluate with BadZipFile or EOFError, naming no file, at every start.
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3}, seed=20)
    cache, labels, said = tmp_path / "cache", ("a", "b"), []
    first = load_folder(root, labels, (10, 10), 1, cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:cut])
    again = load_folder(root, labels, (10, 10), 1, cache, said.append)
    np.testing.assert_array_equal(again.x, first.x)
    assert any(entry.name in line and "decoding again" in line for line in said), said
    np.testing.assert_array_equal(load_folder(root, labels, (10, 10), 1, cache).x, first.x)


def test_class_weights_lift_rare_classes():
    y = np.repeat([0, 1], [900, 100])
    w = class_weights(y, 2, power=1.0)
    assert w[1] / w[0] == pytest.approx(9.0)
    assert w[y].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(y, 2, power=0.0), [1.0, 1.0])


def test_unreadable_files_are_left_out_and_named(tmp_path):
    # One corrupt image ended fit, evaluate and baselines with a traceback naming no file.
    root = write_folder(tmp_path / "d", {"a": 12, "b": 12}, seed=3)
    (root / "a" / "bad.png").write_bytes(b"\x89PNG not really")
    (root / "b" / "empty.jpg").write_bytes(b"")
    for cache in (tmp_path / "cache", tmp_path / "cache"):  # decoded, then from the cache
        data = load_dataset(root, (12, 12), 1, cache_dir=cache)
        assert sum(len(s) for s in data.splits.values()) == 24
        (note,) = data.notes
        assert note.startswith("2 unreadable files left out") and "bad.png" in note
        assert "empty.jpg: empty file" in note


def test_images_in_subfolders_count_and_empty_classes_are_refused(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 10, "b": 4}, seed=4)
    write_folder(root / "b" / "batch2", {"x": 6}, seed=5)  # b/batch2/x/*.png: still class b
    split = load_folder(root, ("a", "b"), (12, 12), 1)
    assert np.bincount(split.y).tolist() == [10, 10]
    (root / "__MACOSX").mkdir()
    with pytest.raises(ValueError, match="no readable training images for class __MACOSX"):
        load_dataset(root, (12, 12), 1)


def test_val_folders_must_be_train_classes(tmp_path):
    write_folder(tmp_path / "d" / "train", {"angry": 4, "sad": 4}, seed=6)
    write_folder(tmp_path / "d" / "val", {"Angry": 2, "sad": 2}, seed=7)
    with pytest.raises(ValueError, match="not classes in .*: Angry"):
        load_dataset(tmp_path / "d", (12, 12), 1)
    data = load_dataset(tmp_path / "d", (12, 12), 1, classes=("angry", "sad"))
    assert data.notes == ("val has no images of angry",)


@pytest.mark.parametrize("parts", [("train", "test"), ("train",), ("val", "test")])
def test_split_folders_without_val_are_refused_not_taken_as_classes(tmp_path, parts):
    # A dataset as many are published, train/ + test/ without val/, was taken as one folder of
    # two classes, "test" and "train": fit trained a model of those two labels without a word.
    for n, part in enumerate(parts):
        write_folder(tmp_path / "d" / part, {"Angry": 3, "Happy": 3}, seed=20 + n)
    with pytest.raises(ValueError, match=r"but no (val|train)/: give train/ \+ val/"):
        load_dataset(tmp_path / "d", (12, 12), 1)


def test_split_folders_under_other_names_are_named_in_a_warning(tmp_path):
    # Training/ + Testing/ (as some datasets come) trained a model of those two "classes";
    # such names cannot be told from classes for sure, so the log says what it looks like.
    for n, part in enumerate(("Training", "Testing")):
        write_folder(tmp_path / "d" / part, {"Angry": 3, "Happy": 3}, seed=50 + n)
    data = load_dataset(tmp_path / "d", (12, 12), 1)
    assert data.labels == ("Testing", "Training")
    assert any(
        "the class folders Testing, Training each hold the same folders (Angry, Happy)" in note
        for note in data.notes
    ), data.notes
    # Class folders with their images in them, or in sub-folders of their own, say nothing.
    write_folder(tmp_path / "e", {"Angry": 3, "Happy": 3}, seed=52)
    write_folder(tmp_path / "e" / "Angry", {"batch2": 3}, seed=53)
    assert not any("same folders" in n for n in load_dataset(tmp_path / "e", (12, 12), 1).notes)


def test_fewer_than_two_classes_is_said_of_what_was_given(tmp_path):
    # `--classes Happy` on six class folders said the folder "has fewer than two label
    # folders", which it did not.
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3, "c": 3}, seed=30)
    with pytest.raises(ValueError, match=r"^--classes names one class \(a\): a model needs two"):
        load_dataset(root, (12, 12), 1, classes=("a",))
    write_folder(tmp_path / "one", {"a": 3}, seed=31)
    with pytest.raises(ValueError, match="has fewer than two label folders"):
        load_dataset(tmp_path / "one", (12, 12), 1)


def test_a_runs_labels_stay_when_a_class_folder_is_added(tmp_path):
    # A run of all the folder's classes took them from the folder again: a class folder added
    # since made report, average, split and --resume fail ("no readable training images for
    # class c ... name the classes with --classes", which none of them takes).
    import json

    from edgefer.spec import ModelSpec
    from train.config import FitConfig
    from train.data import prepare_data

    root = write_folder(tmp_path / "flat", {"a": 10, "b": 10}, seed=40)
    run, cfg = tmp_path / "run", FitConfig(data_dir=str(root), input_size=(12, 12))
    first = prepare_data(cfg)
    run.mkdir()
    cfg.save(run)  # as fit wrote it before config.json recorded the labels
    (run / "split.json").write_text(json.dumps(first.assignment))
    spec = ModelSpec(labels=first.labels, input_size=(12, 12), channels=1)
    (run / "spec.json").write_text(spec.to_json())
    write_folder(root, {"c": 3}, seed=41)
    again = prepare_data(FitConfig.load(run), run)
    assert again.labels == ("a", "b")
    assert {n: s.paths for n, s in again.splits.items()} == {
        n: s.paths for n, s in first.splits.items()
    }


def test_the_cache_notices_a_file_replaced_in_place(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 2, "b": 2}, seed=8)
    cache = tmp_path / "cache"
    first = load_folder(root, ("a", "b"), (12, 12), 1, cache)
    Image.new("L", (12, 12), 255).save(root / "a" / "000.png")  # same name, new pixels
    os.utime(root / "a" / "000.png", ns=(1, 1))
    again = load_folder(root, ("a", "b"), (12, 12), 1, cache)
    assert first.x[0].mean() != 255 and again.x[0].mean() == 255


def test_split_command_writes_the_runs_split_as_link_folders(tmp_path, monkeypatch):
    # A one-folder dataset is split inside fit: without this, convert --validate and classify
    # could only be run on every image, training images included.
    from typer.testing import CliRunner

    from train.cli import app
    from train.config import FitConfig

    monkeypatch.chdir(tmp_path)
    root = write_folder(tmp_path / "d", {"Very Happy": 20, "sad": 20}, seed=9)
    write_folder(root / "sad" / "batch2", {"x": 2}, seed=10)  # 000.png twice under sad/
    (tmp_path / "run").mkdir()
    FitConfig(data_dir=str(root), input_size=(12, 12)).save(tmp_path / "run")
    result = CliRunner().invoke(app, ["split", "run", "--out", "parts"])
    assert result.exit_code == 0, result.output
    data = load_dataset(root, (12, 12), 1)
    for name, split in data.splits.items():
        links = sorted((tmp_path / "parts" / name).rglob("*.png"))
        assert sorted(str(p.resolve()) for p in links) == sorted(split.paths)
        assert all(p.parent.name == data.labels[0] for p in links if "Happy" in str(p.resolve()))
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    assert sizes == "train 29, val 7, test 6" and sizes in result.output
    again = CliRunner().invoke(app, ["split", "run", "--out", "parts"])
    assert again.exit_code != 0 and "not empty" in again.output


def test_split_imports_no_tensorflow(tmp_path):
    # `train split` imported TensorFlow (prepare_data lived in train.fit, and train.config
    # imported train.augment): about 10 s and 600 MiB before the first link was written.
    import subprocess
    import sys

    from train.config import FitConfig

    root = write_folder(tmp_path / "d", {"a": 10, "b": 10}, seed=16)
    (tmp_path / "run").mkdir()
    FitConfig(data_dir=str(root), input_size=(12, 12)).save(tmp_path / "run")
    code = (
        "import sys; from typer.testing import CliRunner; from train.cli import app; "
        "r = CliRunner().invoke(app, ['split', 'run', '--out', 'parts']); "
        "assert r.exit_code == 0, r.output; print('tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.split()[-1] == "False"
    assert len(list((tmp_path / "parts").rglob("*.png"))) == 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_are_reordered_and_cut_in_place_as_indexing_would(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (50, 3, 2, 1), dtype=np.uint8)
    order = rng.permutation(50) if seed else np.arange(50)
    y = x.copy()
    permute_rows(y, order)
    np.testing.assert_array_equal(y, x[order])
    keep = np.sort(rng.choice(50, 31, replace=False))
    split = Split(x.copy(), np.arange(50), tuple(map(str, range(50))))
    cut = keep_rows(split, keep)
    np.testing.assert_array_equal(cut.x, x[keep])
    assert cut.y.tolist() == keep.tolist() and cut.paths == tuple(map(str, keep))


def test_splitting_a_folder_and_dropping_duplicates_hold_the_images_once(tmp_path):
    # Each split was a copy of the whole folder's images (and train's dedupe a copy of train)
    # while the whole stayed alive: twice the images at once, 6.5 GB for the reference
    # report's 15,000 images at 222x222x3.
    root = write_folder(tmp_path / "flat", {"x": 200, "y": 100}, seed=5)
    first = root / "x" / "000.png"
    for copy in range(3):  # duplicates of one image: some land in val/test, so train is cut
        (root / "y" / f"dup{copy}.png").write_bytes(first.read_bytes())
    data, peak = peak_memory(lambda: load_dataset(root, (64, 64), 3, split_seed=1))
    images = 303 * 64 * 64 * 3
    assert data.duplicates["dropped_from_train"] > 0
    assert sum(len(s) for s in data.splits.values()) == 303 - data.duplicates["dropped_from_train"]
    assert peak < 1.4 * images, (peak, images)
    again = load_dataset(root, (64, 64), 3, split_seed=1, dedupe=False)
    for name, split in data.splits.items():
        index = [again.splits[name].paths.index(p) for p in split.paths]
        np.testing.assert_array_equal(split.x, again.splits[name].x[index])


def test_a_resumed_split_of_a_folder_with_no_readable_image_says_so(tmp_path):
    # Reordering no image in place took x[0] for its spare row: an IndexError traceback
    # instead of the message that names the classes without a readable image.
    root = tmp_path / "flat"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        (root / label / "0.png").write_bytes(b"not an image")
    assignment = {"train": ["a/0.png", "b/0.png"], "val": [], "test": []}
    with pytest.raises(ValueError, match="no readable training images"):
        load_dataset(root, (8, 8), 1, assignment=assignment)


def count_decodes(monkeypatch) -> list[str]:
    """The paths ``train.data`` decodes from now on, in a list that grows."""
    import train.data as data_module

    decoded: list[str] = []
    real = data_module.load_image

    def counting(path, *args, **kwargs):
        decoded.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_module, "load_image", counting)
    return decoded


def drawn_as_before(data, limit: int, seed: int) -> dict[str, list[str]]:
    """The paths ``fit --limit`` used to keep: drawn from the whole dataset once decoded."""
    rng = np.random.default_rng(seed)
    return {
        name: [s.paths[i] for i in np.sort(rng.permutation(len(s))[:limit])]
        for name, s in data.splits.items()
    }


def test_limit_decodes_only_the_images_it_draws_and_draws_the_same(tmp_path, monkeypatch):
    # `fit --limit 200` and `train split` of such a run decoded every image of the folder (and
    # wrote it all to the cache) before keeping 200 per split: a full load's time and memory.
    from typer.testing import CliRunner

    from train.cli import app
    from train.config import FitConfig

    monkeypatch.chdir(tmp_path)
    root = write_folder(tmp_path / "d", {"a": 40, "b": 20}, seed=11)
    expected = drawn_as_before(load_dataset(root, (12, 12), 1, seed=3), 4, seed=3)
    (tmp_path / "run").mkdir()
    FitConfig(data_dir=str(root), input_size=(12, 12), seed=3, limit=4).save(tmp_path / "run")
    decoded = count_decodes(monkeypatch)
    result = CliRunner().invoke(app, ["split", "run", "--out", "parts"])
    assert result.exit_code == 0, result.output
    assert sorted(decoded) == sorted(p for paths in expected.values() for p in paths)
    for name, paths in expected.items():
        links = (tmp_path / "parts" / name).rglob("*.png")
        assert sorted(str(p.resolve()) for p in links) == sorted(paths)
    assert not (tmp_path / "runs" / "cache").exists()


def test_limit_on_split_folders_draws_as_before_and_dedupes_the_drawn(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_folder(root / "train", {"a": 10, "b": 10}, seed=12)
    write_folder(root / "val", {"a": 8, "b": 8}, seed=13)
    full = load_dataset(root, (12, 12), 1, seed=5)
    decoded = count_decodes(monkeypatch)
    data = load_dataset(root, (12, 12), 1, seed=5, limit=4)
    assert {n: list(s.paths) for n, s in data.splits.items()} == drawn_as_before(full, 4, 5)
    assert len(decoded) == 8 and data.protocol == "folders train/val, limit 4"
    # Train: 2 images per class and copies of 6 val images (all drawn); 10 of 32 val drawn.
    for k in range(2, 10):
        (root / "train" / "a" / f"{k:03d}.png").unlink()
        (root / "train" / "b" / f"{k:03d}.png").unlink()
    for k in range(6):
        copy = root / "train" / "b" / f"copy{k}.png"
        copy.write_bytes((root / "val" / "a" / f"{k:03d}.png").read_bytes())
    write_folder(root / "val", {"a": 16, "b": 16}, seed=13)  # a/000-005 as they were
    data = load_dataset(root, (12, 12), 1, seed=5, limit=10, dedupe=True)
    assert len(data.splits["val"]) == 10 and len(decoded) == 8 + 20
    drawn_val = {x.tobytes() for x in data.splits["val"].x}
    assert all(x.tobytes() not in drawn_val for x in data.splits["train"].x)
    # Only the copies of drawn val images leave train: the others are never measured on.
    kept = sum("copy" in p for p in data.splits["train"].paths)
    dropped = data.duplicates["dropped_from_train"]
    assert 0 < kept < 6 and dropped == 6 - kept and len(data.splits["train"]) == 4 + kept


def test_limit_still_refuses_a_class_with_no_readable_training_image(tmp_path, monkeypatch):
    # With --limit the check ran on the file list only: a class folder of unreadable files was
    # drawn (or not drawn) and left out without an error, and fit trained without that class,
    # even with a limit above the folder's size; without --limit it is refused.
    root = write_folder(tmp_path / "one", {"a": 20, "b": 20}, seed=17)
    (root / "c").mkdir()
    for i in range(10):
        (root / "c" / f"{i}.png").write_bytes(b"\x89PNG not really")
    for limit in (0, 3, 100):
        with pytest.raises(ValueError, match="no readable training images for class c under"):
            load_dataset(root, (12, 12), 1, limit=limit)
    split = tmp_path / "split"
    write_folder(split / "train", {"a": 20, "b": 20}, seed=18)
    write_folder(split / "val", {"a": 4, "b": 4}, seed=19)
    (split / "train" / "c").mkdir()
    for i in range(10):
        (split / "train" / "c" / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no readable training images for class c under"):
        load_dataset(split, (12, 12), 1, limit=5)
    # A readable class that the draw missed costs one decode to check, not its whole folder.
    (split / "train" / "c" / "ok.png").write_bytes((split / "train" / "a" / "000.png").read_bytes())
    decoded = count_decodes(monkeypatch)
    data = load_dataset(split, (12, 12), 1, limit=5, dedupe=False)
    drawn = [p for s in data.splits.values() for p in (*s.paths, *(q for q, _ in s.skipped))]
    checked = [p for p in decoded if p not in drawn]
    assert checked and all(p.startswith(str(split / "train" / "c")) for p in checked)
    assert len(checked) <= 11 and checked[-1].endswith("ok.png")
    assert len(data.splits["train"]) <= 5


def test_colour_images_read_as_grey_are_named_in_a_note(tmp_path):
    # The reference report's own data (colour face crops near 222x222) given to fit or baselines
    # as documented, with the default --channels 1, lost its colour with no word in the log.
    rng = np.random.default_rng(0)
    for label in ("Angry", "Happy"):
        (tmp_path / "c" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(tmp_path / "c" / label / f"{i}.png")
    grey = load_dataset(tmp_path / "c", (12, 12), 1, cache_dir=tmp_path / "cache")
    (note,) = [n for n in grey.notes if "colour" in n]
    assert "are in colour" in note and "about 20x30" in note and "--channels 3" in note
    kept = load_dataset(tmp_path / "c", (12, 12), 3, cache_dir=tmp_path / "cache")
    assert not any("colour" in n for n in kept.notes)
    limited = load_dataset(tmp_path / "c", (12, 12), 1, limit=4)
    assert any("are in colour" in n for n in limited.notes)
    write_folder(tmp_path / "g", {"a": 6, "b": 6}, seed=1)  # grey images: nothing to say
    assert not any("colour" in n for n in load_dataset(tmp_path / "g", (12, 12), 1).notes)


def test_a_class_named_in_another_case_is_refused_naming_the_folder(tmp_path):
    # --classes angry,happy for folders Angry/ and Happy/ (the report's names) said only "no
    # such class folder: angry, happy", as if the folders were not there.
    root = write_folder(tmp_path / "d", {"Angry": 3, "Happy": 3, "Sad": 3}, seed=0)
    with pytest.raises(ValueError, match="no such class folder") as error:
        load_dataset(root, (12, 12), 1, classes=("angry", "Happy", "nope"))
    message = str(error.value)
    assert ": angry, nope" in message and "Angry is there" in message and "case" in message
    with pytest.raises(ValueError) as error:
        load_dataset(root, (12, 12), 1, classes=("nope", "Sad"))
    assert "is there" not in str(error.value)


def test_the_split_has_its_own_seed_and_old_configs_keep_theirs(tmp_path, monkeypatch):
    # --seed set the weights and the split: runs of seeds 1 and 2 on one folder were scored
    # on other val/test images (not comparable), and a teacher of another seed had seen the
    # student's val/test images.
    monkeypatch.chdir(tmp_path)  # prepare_data's cache: runs/cache
    root = write_folder(tmp_path / "flat", {"a": 20, "b": 20}, seed=0)
    one, two = (FitConfig(str(root), input_size=(12, 12), seed=s) for s in (1, 2))
    assert one.split_seed == two.split_seed == 0
    assert prepare_data(one).assignment == prepare_data(two).assignment
    assert prepare_data(two).protocol == "stratified 70/15/15 seed 0"
    other = replace(one, split_seed=5)
    assert prepare_data(other).assignment != prepare_data(one).assignment
    assert FitConfig.from_json(other.to_json()).split_seed == 5
    # A run's config.json from before split_seed (or with it null) was split by its seed,
    # and --resume, report, average and split make that split again.
    parts = stratified_split(np.repeat([0, 1], 20), seed=2, names=("a", "b"))
    by_seed_2 = {
        n: [f"{'ab'[k // 20]}/{k % 20:03d}.png" for k in p]
        for n, p in zip(("train", "val", "test"), parts, strict=True)
    }
    assert by_seed_2 != prepare_data(two).assignment
    old = json.loads(two.to_json())
    del old["split_seed"]
    for written in (old, {**old, "split_seed": None}):
        cfg = FitConfig.from_json(json.dumps(written))
        assert cfg.split_seed == 2
        assert prepare_data(cfg).assignment == by_seed_2


def test_images_beside_the_class_folders_are_named_in_a_warning(tmp_path):
    # Images directly in the dataset's root (or in train/ or val/ beside their class folders)
    # belong to no class and were left out without a word.
    root = write_folder(tmp_path / "flat", {"a": 10, "b": 10}, seed=60)
    for name in ("loose1.png", "loose2.jpg"):
        (root / name).write_bytes((root / "a" / "000.png").read_bytes())
    (root / ".hidden.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    lines: list[str] = []
    data = load_dataset(root, (12, 12), 1)
    data.log_notes(lines.append)
    loose = [line for line in lines if "in no class folder" in line]
    assert len(loose) == 1 and loose[0].startswith("warning: 2 images directly in "), lines
    assert str(root) in loose[0] and "loose1.png" in loose[0], loose
    assert sum(len(s) for s in data.splits.values()) == 20
    limited = load_dataset(root, (12, 12), 1, limit=3)
    assert any("in no class folder" in note for note in limited.notes)
    split = tmp_path / "split"
    write_folder(split / "train", {"a": 4, "b": 4}, seed=61)
    write_folder(split / "val", {"a": 2, "b": 2}, seed=62)
    (split / "val" / "x.png").write_bytes((split / "val" / "a" / "000.png").read_bytes())
    notes = load_dataset(split, (12, 12), 1).notes
    assert [n for n in notes if "in no class folder" in n] == [
        f"1 image directly in {split / 'val'}, in no class folder, is left out ({split / 'val'}"
        "/x.png): move it into its class's folder"
    ]
    clean = load_dataset(write_folder(tmp_path / "clean", {"a": 4, "b": 4}, seed=63), (12, 12), 1)
    assert not [n for n in clean.notes if "in no class folder" in n]

"""Splitting is stratified, deterministic and leak-free; decoding goes through edgefer; cache."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.data import (
    class_weights,
    cross_duplicates,
    has_split_folders,
    list_labels,
    load_dataset,
    load_folder,
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


def test_class_weights_lift_rare_classes():
    y = np.repeat([0, 1], [900, 100])
    w = class_weights(y, 2, power=1.0)
    assert w[1] / w[0] == pytest.approx(9.0)
    assert w[y].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(y, 2, power=0.0), [1.0, 1.0])

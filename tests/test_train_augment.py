"""Augmentation: shapes and range kept, seeded (a resumed epoch sees the same batches)."""

import numpy as np

from train.augment import PRESETS, Augment, train_dataset


def batches(aug: Augment, epoch: int, seed: int = 0):
    x = np.random.default_rng(0).integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)
    y = np.arange(40) % 3
    ds = train_dataset(x, y, np.ones(40, np.float32), 3, 16, aug, seed, epoch)
    return [tuple(t.numpy() for t in b) for b in ds]


def test_same_seed_and_epoch_same_batches_other_epoch_differs():
    aug = PRESETS["full"]
    a, b, c = batches(aug, 1), batches(aug, 1), batches(aug, 2)
    assert [len(t[0]) for t in a] == [16, 16, 8]
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p[0], q[0])
    assert not np.array_equal(a[0][0], c[0][0])


def test_outputs_stay_in_pixel_range_with_one_hot_labels():
    for aug in (PRESETS["full"], Augment(mixup=0.4, erase=1.0)):
        for x, y, w in batches(aug, 3):
            assert x.dtype == np.float32 and x.shape[1:] == (12, 12, 1)
            assert x.min() >= 0 and x.max() <= 255
            np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-5)
            assert w.shape == (len(x),)


def test_no_augmentation_is_identity_up_to_order():
    x = np.random.default_rng(0).integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)
    got = np.concatenate([b[0] for b in batches(PRESETS["none"], 1)])
    assert sorted(map(bytes, got.astype(np.uint8))) == sorted(map(bytes, x))

"""Augmentation: shapes and range kept, seeded (a resumed epoch sees the same batches)."""

import numpy as np
from conftest import peak_memory

from train.augment import PRESETS, Augment, augment_batch, train_dataset
from train.tfenv import tf


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


def _camera(**kwargs) -> np.ndarray:
    """A smooth 24x24 image (a bright disc) through one camera degradation, 64 times."""
    yy, xx = np.mgrid[:24, :24]
    disc = np.where((yy - 11.5) ** 2 + (xx - 11.5) ** 2 < 49, 200, 40).astype(np.float32)
    x = np.repeat(disc[None, ..., None], 64, axis=0)
    aug = Augment(flip=False, rotate=0.0, zoom=0.0, **kwargs)
    return augment_batch(x, np.eye(2)[np.arange(64) % 2], np.ones(64), aug, tf.constant([5, 6]))[
        0
    ].numpy()


def test_camera_degradations_do_what_they_are_named_for_and_repeat_with_the_seed():
    clean = _camera()
    np.testing.assert_array_equal(clean, _camera(blur=0.0, lowres=0.0, noise=0.0))
    sharpness = lambda a: (np.diff(a, axis=2) ** 2).mean(axis=(1, 2, 3))  # noqa: E731
    for kwargs in ({"blur": 1.5}, {"lowres": 0.5}, {"noise": 20.0}):
        a = _camera(**kwargs)
        np.testing.assert_array_equal(a, _camera(**kwargs))
        assert a.min() >= 0 and a.max() <= 255, kwargs
    blurred = _camera(blur=1.5)
    # Each image its own share of the blur: edges softer, some much, some hardly.
    assert np.all(sharpness(blurred) <= sharpness(clean) + 1e-3)
    assert sharpness(blurred).min() < 0.7 * sharpness(clean)[0] < sharpness(blurred).max()
    small = _camera(lowres=0.5)
    changed = np.any(np.abs(small - clean) > 1, axis=(1, 2, 3))
    assert 16 < changed.sum() < 48  # about half of the batch
    assert np.all(sharpness(small[changed]) < sharpness(clean[changed]))
    noisy = _camera(noise=20.0)
    inside = (noisy - clean)[:, 4:20, 4:20]  # away from the clipped border values
    sigmas = inside.std(axis=(1, 2, 3))
    assert sigmas.max() > 12 and sigmas.min() < 8  # each image its own sigma in 0..20
    assert abs(inside.mean()) < 1


def test_camera_share_leaves_the_other_images_as_they_were():
    clean, every = _camera(), _camera(blur=1.5, noise=20.0)
    half = _camera(blur=1.5, noise=20.0, camera_share=0.5)
    untouched = np.all(half == clean, axis=(1, 2, 3))
    assert 16 < untouched.sum() < 48
    np.testing.assert_array_equal(half[~untouched], every[~untouched])


def test_an_epoch_gathers_its_batches_without_copying_all_the_images():
    # Each epoch made a shuffled copy of x and a tensor of it: three times the images in
    # memory at once (7.5 GB for 15,000 at 222x222x3). Batches are now gathered as needed.
    x = np.random.default_rng(0).integers(0, 256, (600, 48, 48, 3), dtype=np.uint8)
    y = np.arange(600) % 3
    none = PRESETS["none"]
    list(train_dataset(x[:32], y[:32], np.ones(32, np.float32), 3, 16, none, 0, 1))  # warm

    def one_epoch():
        ds = train_dataset(x, y, np.ones(600, np.float32), 3, 16, none, 0, 1)
        return [hash(b[0].numpy().tobytes()) for b in ds]

    seen, peak = peak_memory(one_epoch)
    order = np.random.default_rng([0, 1]).permutation(600)
    shuffled = x[order].astype(np.float32)
    assert seen == [hash(shuffled[i : i + 16].tobytes()) for i in range(0, 600, 16)]
    assert peak < 0.5 * x.nbytes, (peak, x.nbytes)

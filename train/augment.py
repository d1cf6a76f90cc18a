"""Per-epoch tf.data pipelines with stateless, seeded augmentation applied to whole batches.

Every random draw is a function of (seed, epoch, batch index), so a resumed run sees exactly the
batches it would have seen without the interruption. Augmentation lives here, never in the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from train.augconfig import PRESETS, Augment
from train.tfenv import tf

__all__ = ["PRESETS", "Augment", "augment_batch", "train_dataset"]


def _affine(images: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    """One projective transform per image: flip, rotation, zoom and shift in a single resample."""
    n = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    u = tf.random.stateless_uniform((n, 5), seed, -1.0, 1.0)
    angle = u[:, 0] * aug.rotate * math.pi / 180
    scale = 1.0 + u[:, 1] * aug.zoom  # >1 zooms out: the transform maps output to input
    flip = tf.where(u[:, 2] < 0, -1.0, 1.0) if aug.flip else tf.ones_like(u[:, 2])
    dx, dy = u[:, 3] * aug.shift * w, u[:, 4] * aug.shift * h
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # output (x, y) -> input: centre, flip x, rotate+scale, shift, un-centre.
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = cx - a0 * cx - a1 * cy + dx
    b2 = cy - b0 * cx - b1 * cy + dy
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def _photometric(images: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    u = tf.random.stateless_uniform((n, 2, 1, 1, 1), seed, -1.0, 1.0)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * (1.0 + u[:, 0] * aug.contrast) + mean
    return images + u[:, 1] * aug.brightness * 255.0


def _blur(images: tf.Tensor, sigma: float, seed: tf.Tensor) -> tf.Tensor:
    """Each image blended toward its Gaussian blur (sigma in pixels) by a share drawn in 0..1."""
    radius = max(1, math.ceil(2 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    channels = images.shape[-1]
    kernel = tf.constant(np.tile((taps / taps.sum())[:, None, None], (1, channels, 1)), tf.float32)
    pads = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
    blurred = tf.pad(images, pads, mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(blurred, kernel[:, None], [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, kernel[None], [1, 1, 1, 1], "VALID")
    share = tf.random.stateless_uniform((tf.shape(images)[0], 1, 1, 1), seed, 0.0, 1.0)
    return images + share * (blurred - images)


def _lowres(images: tf.Tensor, smallest: float, seed: tf.Tensor) -> tf.Tensor:
    """Half the batch resized down to ``s`` x the side (``s`` per batch in smallest..1) and up."""
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    s = tf.random.stateless_uniform((), seed, smallest, 1.0)
    small = tf.maximum(1, tf.cast(tf.round(s * tf.cast(tf.stack([h, w]), tf.float32)), tf.int32))
    down = tf.image.resize(images, small, method="bilinear", antialias=True)
    up = tf.image.resize(down, tf.stack([h, w]), method="bilinear")
    chosen = tf.random.stateless_uniform((n, 1, 1, 1), seed + 1, 0.0, 1.0) < 0.5
    return tf.where(chosen, up, images)


def _noise(images: tf.Tensor, most: float, seed: tf.Tensor) -> tf.Tensor:
    """Gaussian noise, each image's sigma drawn in 0..most grey levels."""
    sigma = tf.random.stateless_uniform((tf.shape(images)[0], 1, 1, 1), seed, 0.0, most)
    return images + sigma * tf.random.stateless_normal(tf.shape(images), seed + 1)


def _camera(images: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    """In a camera's order: the lens blurs, the face is small in the frame, the sensor adds
    noise; on a share ``aug.camera_share`` of the images."""
    x = images
    if aug.blur:
        x = _blur(x, aug.blur, seed)
    if aug.lowres:
        x = _lowres(tf.clip_by_value(x, 0.0, 255.0), aug.lowres, seed + 2)
    if aug.noise:
        x = _noise(x, aug.noise, seed + 6)
    if aug.camera_share >= 1:
        return x
    chosen = tf.random.stateless_uniform((tf.shape(x)[0], 1, 1, 1), seed + 8, 0.0, 1.0)
    return tf.where(chosen < aug.camera_share, x, images)


def _erase(images: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    """Random erasing: with probability ``aug.erase`` a rectangle is replaced by uniform noise."""
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    u = tf.random.stateless_uniform((n, 5), seed, 0.0, 1.0)
    area = 0.02 + u[:, 0] * 0.23
    aspect = tf.exp((u[:, 1] - 0.5) * 2 * math.log(3.0))  # 1/3 .. 3
    eh = tf.sqrt(area * aspect) * tf.cast(h, tf.float32)
    ew = tf.sqrt(area / aspect) * tf.cast(w, tf.float32)
    y0 = u[:, 2] * (tf.cast(h, tf.float32) - eh)
    x0 = u[:, 3] * (tf.cast(w, tf.float32) - ew)
    rows = tf.cast(tf.range(h), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(w), tf.float32)[None, None, :]
    inside = (
        (rows >= y0[:, None, None])
        & (rows < (y0 + eh)[:, None, None])
        & (cols >= x0[:, None, None])
        & (cols < (x0 + ew)[:, None, None])
        & (u[:, 4] < aug.erase)[:, None, None]
    )
    noise = tf.random.stateless_uniform(shape, seed + 1, 0.0, 255.0)
    return tf.where(inside[..., None], noise, images)


def _mixup(x, y, w, alpha: float, seed: tf.Tensor):
    n = tf.shape(x)[0]
    g1 = tf.random.stateless_gamma((n,), seed, alpha)
    g2 = tf.random.stateless_gamma((n,), seed + 7, alpha)
    lam = g1 / (g1 + g2)
    order = tf.reverse(tf.range(n), [0])  # pair each sample with its mirror in the shuffled batch
    lx, ly = lam[:, None, None, None], lam[:, None]
    x = lx * x + (1 - lx) * tf.gather(x, order)
    y = ly * y + (1 - ly) * tf.gather(y, order)
    w = lam * w + (1 - lam) * tf.gather(w, order)
    return x, y, w


def augment_batch(x, y, w, aug: Augment, seed: tf.Tensor):
    """Augment one float32 batch of raw 0..255 pixels (with one-hot labels and sample weights)."""
    if aug.flip or aug.rotate or aug.zoom or aug.shift:
        x = _affine(x, aug, seed)
    if aug.brightness or aug.contrast:
        x = _photometric(x, aug, seed + 11)
    if aug.blur or aug.lowres or aug.noise:
        x = _camera(x, aug, seed + 41)
    x = tf.clip_by_value(x, 0.0, 255.0)
    if aug.erase:
        x = _erase(x, aug, seed + 23)
    if aug.mixup:
        x, y, w = _mixup(x, y, w, aug.mixup, seed + 31)
    return x, y, w


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray,
    n_classes: int,
    batch_size: int,
    aug: Augment,
    seed: int,
    epoch: int,
    teach: Callable[[tf.Tensor], tf.Tensor] | None = None,
    teacher_weight: float = 0.5,
) -> tf.data.Dataset:
    """One epoch of shuffled, augmented ``(x, one-hot y, weight)`` batches, seeded by the epoch.

    ``y`` is integer labels, or already rows of target probabilities (distillation targets).
    ``teach`` maps an augmented batch to soft targets; each label becomes
    ``(1 - teacher_weight) * y + teacher_weight * teach(x)`` for the view the student sees.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(y))
    # Only the order goes into the pipeline; each batch is gathered from ``x`` as it is needed.
    # A shuffled copy of x and a tensor of it cost twice the images again (at 222x222x3, 15,000
    # images: 4.4 GB on top of the 2.2 GB of x).
    arrays = (x, y, sample_weight)
    dtypes = tuple(tf.as_dtype(a.dtype) for a in arrays)
    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()

    def gather(index: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in arrays)

    def prepare(i, index):
        batch = tf.numpy_function(gather, [index], dtypes, stateful=False)
        shapes = [(None, *a.shape[1:]) for a in arrays]
        bx, by, bw = (tf.ensure_shape(t, s) for t, s in zip(batch, shapes, strict=True))
        bx = tf.cast(bx, tf.float32)
        by = tf.one_hot(by, n_classes) if y.ndim == 1 else tf.cast(by, tf.float32)
        batch_seed = tf.stack([tf.constant(seed * 100_003 + epoch, tf.int64), i])
        return augment_batch(bx, by, bw, aug, batch_seed)

    ds = ds.map(prepare, num_parallel_calls=2, deterministic=True)
    if teach is not None:
        a = teacher_weight
        ds = ds.map(lambda bx, by, bw: (bx, (1 - a) * by + a * teach(bx), bw))
    return ds.prefetch(2)

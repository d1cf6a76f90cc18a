"""Augmentation strengths and presets, without TensorFlow: ``train.augment`` applies them in
tf.data, ``train.torchkd`` on a GPU in PyTorch (a machine that has no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; 0 switches one off.

    Attributes:
        flip: horizontal flips (faces are near-symmetric).
        rotate: maximum rotation in degrees (uniform in +-rotate).
        zoom: maximum relative zoom in or out.
        shift: maximum translation as a fraction of the side.
        brightness: maximum additive change as a fraction of 255.
        contrast: maximum relative contrast change around each image's mean.
        erase: probability of random erasing (one 2-25% rectangle of noise).
        mixup: mixup alpha (Beta(alpha, alpha) mixing of batch pairs).
        blur: camera blur: each image is blended, by its own share in 0..1, toward a Gaussian
            blur of this sigma in pixels.
        lowres: a small face enlarged: half of each batch is resized down to a side
            ``s`` times the input's (``s`` drawn per batch in lowres..1) and back up.
        noise: sensor noise: Gaussian, each image's sigma drawn in 0..noise grey levels.
        camera_share: the share of images that get the camera degradations (blur, lowres,
            noise) at all; the others stay as the augmentation above left them.
    """

    flip: bool = True
    rotate: float = 10.0
    zoom: float = 0.10
    shift: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erase: float = 0.0
    mixup: float = 0.0
    blur: float = 0.0
    lowres: float = 0.0
    noise: float = 0.0
    camera_share: float = 1.0

    def __post_init__(self) -> None:
        if self.blur < 0 or self.noise < 0:
            raise ValueError(f"blur and noise must be >= 0, not {self.blur} and {self.noise}")
        if not 0 <= self.lowres < 1:
            raise ValueError(f"lowres must be in [0, 1) (0: off), not {self.lowres}")
        if not 0 < self.camera_share <= 1:
            raise ValueError(f"camera_share must be in (0, 1], not {self.camera_share}")


PRESETS = {
    "none": Augment(flip=False, rotate=0.0, zoom=0.0),
    "report": Augment(),  # the reference report: flip, +-10 degrees, 10% zoom
    "full": Augment(shift=0.10, brightness=0.2, contrast=0.2, erase=0.25),
}

"""Model architectures. Each takes raw 0..255 float pixels and returns softmax probabilities.

Only ops that convert to TFLite and quantize to full int8 cleanly (see the device contract):
Rescaling, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Add, pooling, Dense, Dropout,
Flatten, and the sigmoid gate and Multiply of squeeze-excite.
"""

from __future__ import annotations

from collections.abc import Callable

from train.tfenv import keras

layers = keras.layers


def seed(
    input_shape: tuple[int, int, int],
    n_classes: int,
    filters: tuple[int, ...] = (32, 64, 64, 64),
    padding: str = "valid",
) -> keras.Model:
    """The reference report's CNN: 4 x [conv3x3 ReLU -> maxpool2], dense 128 -> 64 -> N.

    With the default filters and 'valid' padding it has 1,281,670 parameters at 222x222 RGB with
    6 classes (the report's 1.28M). At 48x48 grey the last feature map is 1x1x64 (109,703
    parameters). Where a map is too small for a valid 3x3 conv and a 2x2 pool, that conv pads
    ('same') and the pool is skipped, so the network builds at any input size.
    """
    inputs = keras.Input(input_shape)
    h = layers.Rescaling(1 / 255)(inputs)
    for f in filters:
        side = min(h.shape[1], h.shape[2])
        h = layers.Conv2D(f, 3, padding=padding if side >= 4 else "same", activation="relu")(h)
        if min(h.shape[1], h.shape[2]) >= 2:
            h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dense(128, activation="relu")(h)
    h = layers.Dense(64, activation="relu")(h)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(h)
    return keras.Model(inputs, outputs, name="seed")


def _conv_bn(h, filters: int, kernel: int = 3, strides: int = 1, relu: bool = True):
    # No conv bias: BatchNormalization supplies the offset and folds into the conv for TFLite.
    h = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    return layers.ReLU(6.0)(h) if relu else h


def _squeeze_excite(h, reduction: int):
    """Channel attention (Hu et al. 2018): each channel scaled by a gate computed from the
    global average of all channels; about 2 * channels^2 / reduction weights."""
    channels = h.shape[-1]
    g = layers.GlobalAveragePooling2D(keepdims=True)(h)
    g = layers.Dense(max(channels // reduction, 8), activation="relu")(g)
    g = layers.Dense(channels, activation="sigmoid")(g)
    return layers.Multiply()([h, g])


def _residual(h, filters: int, se: int = 0):
    """Two 3x3 conv-BN with an identity (or 1x1 projection) shortcut; ReLU6 after the add.
    ``se`` > 0 gates the residual branch's channels (squeeze-excite, that reduction)."""
    shortcut = h if h.shape[-1] == filters else _conv_bn(h, filters, 1, relu=False)
    h = _conv_bn(h, filters)
    h = _conv_bn(h, filters, relu=False)
    if se:
        h = _squeeze_excite(h, se)
    return layers.ReLU(6.0)(layers.Add()([h, shortcut]))


def edge(
    input_shape: tuple[int, int, int],
    n_classes: int,
    stem: tuple[int, ...] = (16, 32),
    widths: tuple[int, ...] = (48, 96, 192),
    dropout: float = 0.3,
    blocks: tuple[int, ...] = (),
    head: str = "gap",
    se: int = 0,
) -> keras.Model:
    """A small ResNet for 48x48 faces: full-resolution stem convs, then per stage a 2x2 max-pool
    and one residual block.

    Plain 3x3 convs rather than depthwise-separable ones: on CPUs (TF for training, XNNPACK int8
    on the Pi) they reach far more of the machine's FLOP/s, and at these widths the model sits
    within the 150 MFLOP / 1.3M-parameter budget. ReLU6 bounds activations, which int8 likes.
    Max-pooling rather than strided convs keeps small expression cues (mouth corners, brows).
    ``blocks`` gives the residual blocks per stage (default one each). ``head``: ``gap``
    (global average pool) or ``flatten``, which keeps where on the face a feature was found
    (at 48x48, 6x6 positions: 47k more weights, 0.1 MFLOPs more). ``se``: squeeze-excite
    reduction in each residual block (0: none; 4 adds 24,612 weights and 0.05 MFLOPs).
    """
    if head not in ("gap", "flatten"):
        raise ValueError(f"head must be gap or flatten, not {head!r}")
    inputs = keras.Input(input_shape)
    h = layers.Rescaling(1 / 255)(inputs)
    for f in stem:
        h = _conv_bn(h, f)
    for w, n in zip(widths, blocks or (1,) * len(widths), strict=True):
        h = layers.MaxPooling2D()(h)
        for _ in range(n):
            h = _residual(h, w, se)
    h = layers.GlobalAveragePooling2D()(h) if head == "gap" else layers.Flatten()(h)
    h = layers.Dropout(dropout)(h)
    # float32 softmax also under a mixed-precision policy (see FitConfig.precision).
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(h)
    return keras.Model(inputs, outputs, name="edge")


ARCHS: dict[str, Callable[..., keras.Model]] = {"seed": seed, "edge": edge}


def build(name: str, input_shape: tuple[int, int, int], n_classes: int, **kwargs) -> keras.Model:
    """Raises ValueError for an unknown architecture name."""
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; one of {', '.join(ARCHS)}")
    return ARCHS[name](input_shape, n_classes, **kwargs)

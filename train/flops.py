"""Analytic FLOPs (2 x multiply-accumulates) from a Keras model's layer shapes.

Only layers with multiply-accumulates are counted: convolutions and dense layers. BatchNorm folds
into the preceding conv for inference; activations, pooling and adds are a few per element and
are left out, as in the usual MAC-based counts.
"""

from __future__ import annotations

import math

from train.tfenv import keras

layers = keras.layers


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for a single image (0 for layers without any)."""
    if isinstance(layer, layers.SeparableConv2D):
        k = math.prod(layer.kernel_size)
        cin = int(layer.input.shape[-1])
        out = _spatial(layer.output.shape)
        return (
            out * k * cin * layer.depth_multiplier
            + out * cin * layer.depth_multiplier * layer.filters
        )
    if isinstance(layer, layers.DepthwiseConv2D):
        k = math.prod(layer.kernel_size)
        return _spatial(layer.output.shape) * k * int(layer.output.shape[-1])
    if isinstance(layer, layers.Conv2D):
        k = math.prod(layer.kernel_size)
        cin = int(layer.input.shape[-1]) // layer.groups
        return _spatial(layer.output.shape) * k * cin * layer.filters
    if isinstance(layer, layers.Dense):
        return int(layer.input.shape[-1]) * layer.units
    return 0


def count_flops(model: keras.Model) -> int:
    """FLOPs per image = 2 x the MACs of every conv and dense layer, nested models included."""
    return 2 * sum(
        count_flops(layer) // 2 if isinstance(layer, keras.Model) else layer_macs(layer)
        for layer in model.layers
    )

"""Multiply-accumulates of a TFLite model, counted from its conv and fully-connected tensors.

Pooling, activations, (de)quantisation and softmax are left out: for a CNN they are well under
1% of the arithmetic. FLOPs are reported as 2 x MACs (one multiply and one add).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefer._quiet import quiet_fd
from edgefer.runtime import load_runtime
from edgefer.spec import flatbuffer


@dataclass(frozen=True)
class Cost:
    """Per-image arithmetic of one model."""

    macs: int
    weights: int  # conv/fc filter and bias elements
    by_op: dict[str, int]

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _op_macs(op: str, weight: tuple[int, ...], output: tuple[int, ...]) -> int:
    """MACs of one op for one image; ``output`` without its batch dimension."""
    positions = int(np.prod(output[:-1])) if len(output) > 1 else 1
    if op == "CONV_2D":  # filter (out_ch, kh, kw, in_ch): every output value sums kh*kw*in_ch
        return positions * output[-1] * int(np.prod(weight[1:]))
    if op == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out_ch): one kh*kw window per channel
        return positions * output[-1] * weight[1] * weight[2]
    if op == "FULLY_CONNECTED":  # filter (units, inputs)
        return positions * weight[0] * weight[1]
    return 0


def model_cost(model_bytes: bytes) -> Cost:
    """Count MACs per image from the model's op list and tensor shapes (batch size 1)."""
    runtime = load_runtime()
    with quiet_fd(2):
        interpreter = runtime.interpreter_class(model_content=flatbuffer(model_bytes))
    detail = interpreter.get_input_details()[0]
    with quiet_fd(2):  # XNNPACK announces itself on stderr
        if int(detail["shape"][0]) != 1:
            interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
        interpreter.allocate_tensors()
    shapes = {
        t["index"]: tuple(int(x) for x in t["shape"]) for t in interpreter.get_tensor_details()
    }
    macs, weights, by_op = 0, 0, {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only op-level view it offers
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        inputs = [int(i) for i in op["inputs"] if int(i) >= 0]
        weight = shapes[inputs[1]]
        output = shapes[int(op["outputs"][0])][1:]
        n = _op_macs(name, weight, output)
        macs += n
        by_op[name] = by_op.get(name, 0) + n
        weights += int(np.prod(weight)) + (
            int(np.prod(shapes[inputs[2]])) if len(inputs) > 2 else 0
        )
    return Cost(macs, weights, by_op)

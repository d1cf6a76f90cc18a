"""Rebuild a trainable Keras ``edge`` model from an int8 edgefer model, to warm-start ``fit``.

What for: a trained model's Keras file and checkpoints live in ``runs/``, which is not kept with
the project; the shipped int8 model is. Its weights, dequantized, give back the float network
(top-1 agreement with the int8 model is measured and must reach ``MIN_AGREEMENT``).

The converter folded each batch-norm into the conv before it, and ``Rescaling(1/255)`` into the
first conv. Folded, a conv computes ``W*x + b``. Put back as a conv with batch-norm at inference
statistics (mean 0, variance 1) it would compute the same, but in training the batch-norm
normalises by the batch's own statistics, which would change the function at the first step. So
each batch-norm is split out again from the statistics of ``W*x`` over training images (mean
``m``, standard deviation ``s`` per channel): kernel ``W/s``, batch-norm mean ``m/s``, variance
``1 - eps``, scale ``s``, offset ``b + m``. That is ``W*x + b`` at inference, and close to it with
batch statistics. The calibration temperature folded into the dense layer is undone (``fit``
trains the uncalibrated model; ``calibrate`` fits a temperature again).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgefer._quiet import quiet_fd
from edgefer.spec import ModelSpec, flatbuffer, read_spec
from train import archs
from train.flops import count_flops
from train.fromtorch import edge_layers
from train.tfenv import keras, restoring

#: Fewest top-1 answers, as a fraction, that the rebuilt float model must share with the int8 one.
MIN_AGREEMENT = 0.97
#: Largest probability change allowed when the batch-norms are split out (float32).
TOLERANCE = 1e-4
#: Spec metadata that ``calibrate`` and ``convert`` added, which the rebuilt model does not have.
_NOT_OF_THE_FLOAT_MODEL = {
    "temperature",
    "temperature_fitted_on",
    "quantization",
    "converter",
    "source_model",
    "calibration_images",
    "calibration_data",
}
#: The ops of an int8 ``edge`` model; anything else is another architecture.
EDGE_OPS = {"CONV_2D", "MAX_POOL_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "DELEGATE"}


class _Int8Model:
    """The int8 model's dequantized weights, and a way to run it."""

    def __init__(self, blob: bytes) -> None:
        from edgefer.runtime import load_runtime

        interpreter = load_runtime().interpreter_class
        # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on fd 2; errors still raise.
        with quiet_fd(2):
            self.interpreter = interpreter(model_content=flatbuffer(blob), num_threads=2)
            self.interpreter.allocate_tensors()
        self.tensors = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        self.ops = self.interpreter._get_ops_details()

    def weights(self, index: int) -> np.ndarray:
        q = self.interpreter.get_tensor(index).astype(np.float32)
        qp = self.tensors[index]["quantization_parameters"]
        scales, zeros = qp["scales"], qp["zero_points"]
        if len(scales) == 0:
            raise ValueError("not an int8 model: a weight tensor has no quantization")
        shape = [1] * q.ndim
        if len(scales) > 1:
            shape[qp["quantized_dimension"]] = -1
        return (q - np.reshape(zeros, shape)) * np.reshape(scales, shape)

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        it = self.interpreter
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        if inp["dtype"] != np.int8:
            raise ValueError(f"not an int8 model: its input is {np.dtype(inp['dtype']).name}")
        scale, zero = inp["quantization"]
        results = []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch].astype(np.float32)
            it.resize_tensor_input(inp["index"], list(xb.shape))
            it.allocate_tensors()
            q = np.clip(np.round(xb / scale + zero), -128, 127).astype(np.int8)
            it.set_tensor(inp["index"], q)
            it.invoke()
            results.append(it.get_tensor(out["index"]))
        return np.concatenate(results)


def _arch_args(int8: _Int8Model) -> dict[str, tuple[int, ...]]:
    """The ``edge`` builder's ``stem``, ``widths`` and ``blocks``, read off the int8 graph: the
    convs before the first max-pool are the stem; after each max-pool, the first conv's output
    channels are the stage's width and its ADDs its residual blocks. (The spec does not record
    ``--arch-args``: the shipped robust model has four stages, which a rebuild with the default
    three took for a wrong network.)"""
    stem: list[int] = []
    widths: list[int] = []
    blocks: list[int] = []
    for op in int8.ops:
        name = op["op_name"]
        if name == "MAX_POOL_2D":
            widths.append(0)
            blocks.append(0)
        elif name == "CONV_2D":
            out = int(int8.tensors[op["inputs"][1]]["shape"][0])  # OHWI
            if not widths:
                stem.append(out)
            elif not widths[-1]:
                widths[-1] = out
        elif name == "ADD" and blocks:
            blocks[-1] += 1
    args = {"stem": tuple(stem), "widths": tuple(widths)}
    if set(blocks) != {1}:
        args["blocks"] = tuple(blocks)
    return args


def rebuild(blob: bytes, images: np.ndarray) -> tuple[keras.Model, ModelSpec, dict[str, Any]]:
    """The float Keras ``edge`` model of the int8 edgefer model ``blob``.

    ``images``: uint8 training images at the model's input size in random order, for the
    batch-norm statistics and the agreement checks (a few thousand are plenty; the first 512
    make the batch whose statistics are tried).

    Raises:
        ValueError: not an int8 edgefer ``edge`` model, or the rebuilt model does not agree with
            it.
    """
    spec = read_spec(blob)
    if spec is None:
        raise ValueError("no edgefer spec in the model: not made by edgefer convert")
    raw = set(spec.mean) == {0.0} and set(spec.std) == {1.0}
    if spec.output != "probabilities" or not raw:
        raise ValueError("only models of raw 0-255 pixels in and probabilities out are rebuilt")
    meta = spec.metadata
    if meta.get("arch", "edge") != "edge":
        raise ValueError(f"only the edge architecture is rebuilt, not {meta['arch']!r}")
    int8 = _Int8Model(blob)
    other = sorted({op["op_name"] for op in int8.ops} - EDGE_OPS)
    if other:
        raise ValueError(f"not an edge model: it has {', '.join(other)} ops")
    # In op order, by shape: a shape may come more than once (a 192->192 conv in stages 3
    # and 4), and the Keras layers of one shape were made in the same order.
    convs: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
    dense = None
    for op in int8.ops:
        if op["op_name"] == "CONV_2D":
            w = int8.weights(op["inputs"][1]).transpose(1, 2, 3, 0)  # to (kh, kw, in, out)
            convs.setdefault(w.shape, []).append((w, int8.weights(op["inputs"][2])))
        elif op["op_name"] == "FULLY_CONNECTED":
            dense = (int8.weights(op["inputs"][1]).T, int8.weights(op["inputs"][2]))
    kwargs = _arch_args(int8)
    height, width = spec.input_size
    model = archs.edge((height, width, spec.channels), len(spec.labels), **kwargs)
    conv_layers, norms, heads = edge_layers(model)
    shapes = sorted(tuple(c.kernel.shape) for c in conv_layers)
    if dense is None or sorted(s for s, ws in convs.items() for _ in ws) != shapes:
        raise ValueError(f"its convolutions do not make an edge network with {kwargs}")
    folded = []
    for k, (conv, norm) in enumerate(zip(conv_layers, norms, strict=True)):
        w, b = convs[tuple(conv.kernel.shape)].pop(0)
        if k == 0:
            w = w * 255.0  # Rescaling(1/255) is folded into the first conv
        conv.set_weights([w])
        norm.set_weights([np.ones_like(b), b, np.zeros_like(b), np.full_like(b, 1 - norm.epsilon)])
        folded.append((w, b))
    temperature = float(meta.get("temperature", 1.0))
    head = heads[0]
    head.set_weights([dense[0] * temperature, dense[1] * temperature])

    x = images.astype(np.float32)
    before = np.asarray(model.predict(x, batch_size=256, verbose=0))
    probe = keras.Model(model.input, [c.output for c in conv_layers])
    for (conv, norm), (w, b), out in zip(
        zip(conv_layers, norms, strict=True),
        folded,
        probe.predict(x, batch_size=256, verbose=0),
        strict=True,
    ):
        m = out.mean(axis=(0, 1, 2))
        s = out.std(axis=(0, 1, 2)) + 1e-6
        conv.set_weights([w / s])
        norm.set_weights([s, b + m, m / s, np.full_like(m, 1 - norm.epsilon)])
    after = np.asarray(model.predict(x, batch_size=256, verbose=0))
    diff = float(np.abs(after - before).max())
    if diff > TOLERANCE:
        raise ValueError(f"splitting the batch-norms out changed the probabilities by {diff:.1e}")
    agreement = float((after.argmax(1) == int8.predict(x).argmax(1)).mean())
    if agreement < MIN_AGREEMENT:
        raise ValueError(
            f"the rebuilt float model agrees with the int8 one on only {agreement:.3f} of "
            f"{len(x)} images (at least {MIN_AGREEMENT} expected)"
        )
    training = _with_batch_statistics(model, x[:512])
    report = {
        "agreement": agreement,
        "batch_statistics_agreement": float((training.argmax(1) == after[:512].argmax(1)).mean()),
        "split_difference": diff,
        "temperature_undone": temperature,
        "params": int(model.count_params()),
        "flops": int(count_flops(model)),
        "images": len(x),
    }
    metadata = {k: v for k, v in meta.items() if k not in _NOT_OF_THE_FLOAT_MODEL}
    metadata["arch_args"] = {k: list(v) for k, v in kwargs.items()}  # for to-torch, say
    metadata["rebuilt_from_int8"] = {k: report[k] for k in ("agreement", "temperature_undone")}
    return model, ModelSpec(**{**spec.__dict__, "metadata": metadata}), report


def _with_batch_statistics(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's probabilities for ``x`` with its batch-norms in training mode (normalising
    by ``x``'s own statistics, as the first steps of a warm start do) and its dropout off:
    dropout's random masks, unseeded, moved the figure from run to run (0.96-1.00)."""
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    with restoring(dropouts, "rate"):
        for layer in dropouts:
            layer.rate = 0.0
        return np.asarray(model(x, training=True))


def from_tflite(
    model_path: Path,
    data_dir: Path,
    out: Path,
    samples: int = 4096,
    log: Callable[[str], None] = print,
    split_seed: int = 0,
) -> dict[str, Any]:
    """Rebuild ``model_path`` with ``samples`` train images of ``data_dir`` (one folder split
    70/15/15 by ``split_seed``, as ``fit --split-seed``); write ``out/model.keras`` and
    ``spec.json`` beside it; ``log`` the data's warnings. Returns the report (see ``rebuild``)."""
    from train.data import CACHE_DIR, load_dataset

    spec = read_spec(model_path.read_bytes())
    if spec is None:
        raise ValueError(f"{model_path}: no edgefer spec in the model: not made by edgefer convert")
    data = load_dataset(
        data_dir,
        spec.input_size,
        spec.channels,
        spec.labels,
        cache_dir=CACHE_DIR,
        split_seed=split_seed,
    )
    data.log_notes(log)  # unreadable files left out; a val/test split that misses a class
    x = data.splits["train"].x
    pick = np.random.default_rng(0).choice(len(x), min(samples, len(x)), replace=False)
    model, rebuilt, report = rebuild(model_path.read_bytes(), x[pick])
    rebuilt.metadata["rebuilt_from_int8"].update(model=model_path.name, split_seed=split_seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    (out / "spec.json").write_text(rebuilt.to_json() + "\n")
    return report

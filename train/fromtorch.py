"""Copy a student trained by ``train.torchkd`` into the Keras ``edge`` model, for the converter,
and a Keras ``edge`` model into a ``train.torchkd`` student checkpoint, to start from on a GPU.

The two networks are the same layer for layer (``train.torchkd.EdgeNet``); the Keras one ends in
the softmax. Convolutions are matched in the order each network creates them, batch-norms
likewise, then the dense layer; a copy is refused unless both give the same probabilities.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.spec import ModelSpec
from train import archs
from train.flops import count_flops
from train.tfenv import keras

#: The largest difference allowed between the two networks' probabilities (float32 on a CPU).
TOLERANCE = 1e-4


def creation_order(layer) -> int:
    """Keras' automatic names count up per layer type (``conv2d``, ``conv2d_1``, ...) in the
    order the layers are created, which ``model.layers`` (graph order) does not keep."""
    m = re.search(r"_(\d+)$", layer.name)
    return int(m.group(1)) if m else 0


def edge_layers(model: keras.Model) -> tuple[list, list, list]:
    """The convolutions, batch-norms and dense layers of a Keras ``edge`` model, each in the
    order they were created (a conv's batch-norm at the conv's place)."""
    layers = keras.layers

    def of(kind):
        return sorted((x for x in model.layers if isinstance(x, kind)), key=creation_order)

    return of(layers.Conv2D), of(layers.BatchNormalization), of(layers.Dense)


def _pairs(model: keras.Model, net, name: object) -> list[tuple[Any, Any]]:
    """(Keras layer, torch module) for every weighted layer of the two ``edge`` networks.

    Raises:
        ValueError: they do not have the same layers (or batch-norm epsilon).
    """
    import torch

    convs, norms, dense = edge_layers(model)
    order = net.keras_order()
    t_convs = [m for m in order if isinstance(m, torch.nn.Conv2d)]
    t_norms = [m for m in order if isinstance(m, torch.nn.BatchNorm2d)]
    if (len(convs), len(norms), len(dense)) != (len(t_convs), len(t_norms), 1):
        raise ValueError(f"{name}: layer counts differ from the Keras edge model")
    for k, t in zip(norms, t_norms, strict=True):
        if abs(t.eps - k.epsilon) > 1e-9:
            raise ValueError(f"batch-norm epsilon {t.eps} is not Keras' {k.epsilon}")
    return [
        *zip(convs, t_convs, strict=True),
        *zip(norms, t_norms, strict=True),
        (dense[0], net.fc),
    ]


def _difference(net, model: keras.Model) -> float:
    """The largest difference between the two networks' probabilities on random images."""
    import torch

    net.eval()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, *model.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2)), 1).numpy()
    got = np.asarray(model(x, training=False))
    return float(np.abs(expected - got).max())


def port(checkpoint: Path, out: Path, summary: Path | None = None) -> dict[str, Any]:
    """Write ``out/model.keras`` + ``spec.json`` from a ``student-*.pt`` of ``train.torchkd``.

    ``summary`` (the run's ``summary.json``) supplies the data and training provenance for the
    spec. Returns the largest probability difference measured between the two networks.

    Raises:
        ValueError: the checkpoint does not fit the architecture, or the outputs differ.
    """
    import torch

    from train.torchkd import load_student

    ck = torch.load(checkpoint, map_location="cpu")
    labels, config = list(ck["labels"]), ck["config"]
    net = load_student(ck)
    model = archs.edge(
        (48, 48, 1),
        len(labels),
        stem=tuple(config["stem"]),
        widths=tuple(config["widths"]),
        dropout=config["dropout"],
    )
    for k, t in _pairs(model, net, checkpoint):
        if isinstance(t, torch.nn.Conv2d):
            k.set_weights([t.weight.detach().permute(2, 3, 1, 0).numpy()])
        elif isinstance(t, torch.nn.BatchNorm2d):
            k.set_weights(
                [v.detach().numpy() for v in (t.weight, t.bias, t.running_mean, t.running_var)]
            )
        else:
            k.set_weights([t.weight.detach().numpy().T, t.bias.detach().numpy()])
    diff = _difference(net, model)
    if diff > TOLERANCE:
        raise ValueError(f"{checkpoint}: Keras and PyTorch probabilities differ by {diff:.2e}")

    info = json.loads(Path(summary).read_text()) if summary else {}
    meta = info.get("meta", {})
    metadata = {
        "training_data": meta.get("data", "unknown"),
        "split": meta.get("protocol", "unknown"),
        "train_images": meta.get("n_train"),
        "val_images": meta.get("n_val"),
        "duplicates": meta.get("duplicates"),
        "arch": "edge",
        "arch_args": {"stem": config["stem"], "widths": config["widths"]},
        "params": int(model.count_params()),
        "flops": int(count_flops(model)),
        "trained_with": "train.torchkd (PyTorch)",
        "torch_checkpoint": Path(checkpoint).name,
    }
    if info:
        metadata.update(
            epochs=info.get("epochs"),
            seed=info.get("plan", {}).get("seed"),
            val_accuracy_torch=info.get("best", {}).get("acc"),
            teachers_val_accuracy=info.get("teachers_val"),
        )
    spec = ModelSpec(
        labels=tuple(labels),
        input_size=(48, 48),
        channels=1,
        mean=(0.0,),
        std=(1.0,),
        output="probabilities",
        name="edge-48x48x1",
        metadata=metadata,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    (out / "spec.json").write_text(spec.to_json() + "\n")
    return {"max_difference": diff, "params": metadata["params"], "flops": metadata["flops"]}


def to_torch(model_path: Path, out: Path, arch_args: dict[str, Any] | None = None) -> dict:
    """Write a ``train.torchkd`` student checkpoint (``torchkd run --student-init``) of the Keras
    ``edge`` model at ``model_path`` (with its ``spec.json``).

    ``arch_args``: the student's ``stem``/``widths``, when larger than the model's: the model is
    grown into it first, as ``fit --grow`` does (new residual branches start at zero).

    Raises:
        ValueError: not an ``edge`` model of that shape, or the copy's outputs differ.
    """
    import torch

    from train.fit import warm_start
    from train.torchkd import STEM, WIDTHS, EdgeNet

    spec_path = Path(model_path).with_name("spec.json")
    if not spec_path.is_file():
        raise ValueError(f"{model_path}: no spec.json beside it (labels, input size)")
    spec = ModelSpec.from_json(spec_path.read_text())
    labels = spec.labels
    if (*spec.input_size, spec.channels) != (48, 48, 1):
        size = f"{spec.input_size[0]}x{spec.input_size[1]}x{spec.channels}"
        raise ValueError(f"{model_path}: torchkd students take 48x48x1 images, not {size}")
    stored = spec.metadata.get("arch_args", {})
    args = {"stem": STEM, "widths": WIDTHS, **stored, **(arch_args or {})}
    stem, widths = tuple(args["stem"]), tuple(args["widths"])
    model = archs.edge((48, 48, 1), len(labels), stem=stem, widths=widths)
    arch = spec.metadata.get("arch", "edge")
    if arch != "edge":  # it was named "--init ... another architecture" (fit's words)
        raise ValueError(f"{model_path} is a {arch!r} model: torchkd students are edge networks")
    student = f"the student's (stem {list(stem)}, widths {list(widths)})"
    fresh = warm_start(
        model, str(model_path), labels, grow=bool(arch_args), role="the model", target=student
    )
    net = EdgeNet(len(labels), stem=stem, widths=widths)
    with torch.no_grad():
        for k, t in _pairs(model, net, model_path):
            w = [torch.from_numpy(np.asarray(v, np.float32)) for v in k.get_weights()]
            if isinstance(t, torch.nn.Conv2d):
                t.weight.copy_(w[0].permute(3, 2, 0, 1))
            elif isinstance(t, torch.nn.BatchNorm2d):
                for dst, src in zip(
                    (t.weight, t.bias, t.running_mean, t.running_var), w, strict=True
                ):
                    dst.copy_(src)
            else:
                t.weight.copy_(w[0].T)
                t.bias.copy_(w[1])
    diff = _difference(net, model)
    if diff > TOLERANCE:
        raise ValueError(f"{model_path}: Keras and PyTorch probabilities differ by {diff:.2e}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
    torch.save({"state_dict": sd, "config": net.config, "labels": list(labels)}, out)
    return {
        "max_difference": diff,
        "fresh_layers": fresh,
        "params": int(model.count_params()),
        "widths": list(widths),
    }

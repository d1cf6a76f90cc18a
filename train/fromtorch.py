"""Copy a student trained by ``train.torchkd`` into the Keras ``edge`` model, for the converter.

The two networks are the same layer for layer (``train.torchkd.EdgeNet``); the Keras one ends in
the softmax. Convolutions are matched in the order each network creates them, batch-norms
likewise, then the dense layer; the copy is refused unless both give the same probabilities.
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


def _created(layer) -> int:
    """Keras' automatic names count up per layer type (``conv2d``, ``conv2d_1``, ...) in the
    order the layers are created, which ``model.layers`` (graph order) does not keep."""
    m = re.search(r"_(\d+)$", layer.name)
    return int(m.group(1)) if m else 0


def port(checkpoint: Path, out: Path, summary: Path | None = None) -> dict[str, Any]:
    """Write ``out/model.keras`` + ``spec.json`` from a ``student-*.pt`` of ``train.torchkd``.

    ``summary`` (the run's ``summary.json``) supplies the data and training provenance for the
    spec. Returns the largest probability difference measured between the two networks.

    Raises:
        ValueError: the checkpoint does not fit the architecture, or the outputs differ.
    """
    import torch

    from train.torchkd import EdgeNet

    ck = torch.load(checkpoint, map_location="cpu")
    labels, config = list(ck["labels"]), ck["config"]
    net = EdgeNet(
        len(labels),
        stem=tuple(config["stem"]),
        widths=tuple(config["widths"]),
        dropout=config["dropout"],
    )
    net.load_state_dict(ck["state_dict"])
    net.eval()
    model = archs.edge(
        (48, 48, 1),
        len(labels),
        stem=tuple(config["stem"]),
        widths=tuple(config["widths"]),
        dropout=config["dropout"],
    )
    layers = keras.layers
    convs = sorted((x for x in model.layers if isinstance(x, layers.Conv2D)), key=_created)
    norms = sorted(
        (x for x in model.layers if isinstance(x, layers.BatchNormalization)), key=_created
    )
    dense = [x for x in model.layers if isinstance(x, layers.Dense)]
    order = net.keras_order()
    t_convs = [m for m in order if isinstance(m, torch.nn.Conv2d)]
    t_norms = [m for m in order if isinstance(m, torch.nn.BatchNorm2d)]
    if (len(convs), len(norms), len(dense)) != (len(t_convs), len(t_norms), 1):
        raise ValueError(f"{checkpoint}: layer counts differ from the Keras edge model")
    for k, t in zip(convs, t_convs, strict=True):
        k.set_weights([t.weight.detach().permute(2, 3, 1, 0).numpy()])
    for k, t in zip(norms, t_norms, strict=True):
        if abs(t.eps - k.epsilon) > 1e-9:
            raise ValueError(f"batch-norm epsilon {t.eps} is not Keras' {k.epsilon}")
        k.set_weights(
            [v.detach().numpy() for v in (t.weight, t.bias, t.running_mean, t.running_var)]
        )
    dense[0].set_weights([net.fc.weight.detach().numpy().T, net.fc.bias.detach().numpy()])

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 48, 48, 1)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2)), 1).numpy()
    got = np.asarray(model(x, training=False))
    diff = float(np.abs(expected - got).max())
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

"""Fold an ensemble of trained models into one model: the mean of their probabilities.

Independently trained networks disagree on many images, and averaging their probabilities is
more accurate than any of them. Folded into one Keras model (one input, the members side by
side, one averaged output) the ensemble converts, quantises and ships as a single ``.tflite``
that the device runs like any other; it costs the members' FLOPs and bytes added together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgefer.convert import resolve_spec
from train.fit import float32_copy, save_inference_model
from train.flops import count_flops
from train.tfenv import keras


def fold_models(models: Sequence[keras.Model]) -> keras.Model:
    """One model whose output is the mean of ``models``' outputs on the same input.

    Raises:
        ValueError: fewer than two models, or different input or output shapes.
    """
    if len(models) < 2:
        raise ValueError("an ensemble needs at least two models")
    in_shape, out_shape = models[0].input_shape, models[0].output_shape
    for m in models[1:]:
        if m.input_shape != in_shape or m.output_shape != out_shape:
            raise ValueError(
                f"members differ: input {m.input_shape} vs {in_shape}, "
                f"output {m.output_shape} vs {out_shape}"
            )
    image = keras.Input(in_shape[1:], name="image")
    members = []
    for k, model in enumerate(models):
        member = float32_copy(model)
        member.name = f"member_{k}"  # loaded runs share their architecture's name
        members.append(member(image))
    return keras.Model(image, keras.layers.Average(name="mean_probability")(members), name="folded")


def fold(paths: Sequence[Path], out: Path) -> dict[str, Any]:
    """Fold the ``.keras`` models at ``paths`` (each with its ``spec.json``) into
    ``out/model.keras`` + ``spec.json``; returns a summary (members, params, FLOPs).

    Raises:
        ConvertError: a member's spec.json is missing or unreadable (as for ``edgefer convert``).
        ValueError: fewer than two models, members that do not output probabilities, or whose
            labels, input size, channels or normalisation differ.
    """
    specs = [resolve_spec(Path(p), None) for p in paths]
    first = replace(specs[0], name="")
    for path, spec in zip(paths, specs, strict=True):
        if spec.output != "probabilities":
            raise ValueError(f"{path} outputs {spec.output}; only probabilities can be averaged")
        if replace(spec, name="") != first:
            raise ValueError(f"{path} is fed or labelled differently from {paths[0]}")
    folded = fold_models([keras.models.load_model(p, compile=False) for p in paths])
    summary = {
        "members": [str(p) for p in paths],
        "params": int(folded.count_params()),
        "flops": int(count_flops(folded)),
    }
    # The data and split are the members' (checked alike above); what describes one member
    # (its arch, size, seed, epochs, val scores) is not the ensemble's.
    member_only = {"arch", "params", "flops", "seed", "best_epoch", "epochs_planned"}
    member_only |= {"val_accuracy", "val_macro_f1", "averaged_epochs"}
    metadata = {k: v for k, v in specs[0].metadata.items() if k not in member_only}
    spec = replace(
        specs[0],
        name=f"ensemble of {len(paths)}",
        metadata={
            **metadata,
            "arch": "ensemble",
            "params": summary["params"],
            "flops": summary["flops"],
            "ensemble_of": summary["members"],
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    save_inference_model(folded, out, spec)
    (out / "fold.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

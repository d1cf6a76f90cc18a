"""Weight averaging of one run's checkpoints (stochastic weight averaging, applied afterwards).

The weights of several epochs of one run are averaged into one network of the same size and
cost, and the batch-norm statistics are measured again on the training images (averaged weights
do not match averaged statistics). The checkpoints to average are kept by ``fit`` when the run's
``keep_from`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.spec import ModelSpec
from train.config import FitConfig
from train.fit import (
    checkpoint_epoch,
    float32_copy,
    prepare_data,
    save_inference_model,
    validate,
)
from train.tfenv import keras, restoring


def average_weights(models: Sequence[keras.Model]) -> keras.Model:
    """A float32 copy of the first model holding the mean of all models' weights.

    Raises:
        ValueError: fewer than one model, or models of different shapes.
    """
    if not models:
        raise ValueError("nothing to average")
    weights = [m.get_weights() for m in models]
    shapes = [[w.shape for w in ws] for ws in weights]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("the checkpoints are not of one architecture")
    out = float32_copy(models[0])
    out.set_weights([np.mean([ws[i] for ws in weights], axis=0) for i in range(len(weights[0]))])
    return out


def refresh_batchnorm(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> None:
    """Replace every BatchNormalization layer's moving mean and variance by their average over
    ``x`` (forward passes in training mode, one pass, cumulative average)."""
    norms = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    if not norms:
        return
    for la in norms:
        la.moving_mean.assign(np.zeros(la.moving_mean.shape, np.float32))
        la.moving_variance.assign(np.ones(la.moving_variance.shape, np.float32))
    with restoring(norms, "momentum"):
        for k, start in enumerate(range(0, len(x), batch_size)):
            for la in norms:
                la.momentum = k / (k + 1)  # moving = mean of the first k+1 batches' statistics
            model(x[start : start + batch_size].astype(np.float32), training=True)


def average_run(
    run: Path,
    out: Path,
    first: int = 0,
    last: int = 0,
    log: Callable[[str], None] = print,
    refresh: bool = True,
) -> dict[str, Any]:
    """Average the run's kept checkpoints of epochs ``first``..``last`` (0: all) into
    ``out/model.keras`` + ``spec.json``; returns the val metrics of the result.

    ``refresh``: re-measure the batch-norm statistics on the (un-augmented) train images;
    otherwise keep the checkpoints' averaged statistics. Both val accuracies are logged.

    Raises:
        FileNotFoundError: no kept checkpoint in that range.
    """
    cfg = FitConfig.load(run)
    found = {checkpoint_epoch(p): p for p in run.glob("last-*.keras")}
    epochs = sorted(e for e in found if e is not None and e >= first and (not last or e <= last))
    if not epochs:
        raise FileNotFoundError(f"no last-<epoch>.keras in {run} for epochs {first}..{last or ''}")
    paths = [found[e] for e in epochs]
    if len(paths) == 1:
        log(
            f"warning: only epoch {epochs[0]}'s checkpoint is kept in epochs {first}..{last or ''}"
            ": nothing to average, its weights are taken as they are (fit --keep-from E keeps"
            " one per epoch from E on)"
        )
    n = len(paths)
    log(f"averaging {n} checkpoint{'s' * (n != 1)} of {run}: epochs {epochs[0]}-{epochs[-1]}")
    data = prepare_data(cfg, run)
    data.log_notes(log)  # unreadable files; images added to or gone from its folder since
    train, val = data.splits["train"], data.splits["val"]
    model = average_weights([keras.models.load_model(p, compile=False) for p in paths])
    metrics = averaged = validate(model, val.x, val.y, data.labels)
    if refresh:
        order = np.random.default_rng(cfg.seed).permutation(len(train))
        refresh_batchnorm(model, train.x[order])
        metrics = validate(model, val.x, val.y, data.labels)
    log(
        f"val accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        + (
            f"(batch-norm statistics re-measured on train; averaged ones gave "
            f"{averaged['accuracy']:.4f})"
            if refresh
            else "(averaged batch-norm statistics)"
        )
    )
    spec = ModelSpec.from_json((run / "spec.json").read_text())
    extra = {
        "averaged_epochs": epochs,
        "val_accuracy": metrics["accuracy"],
        "val_macro_f1": metrics["macro_f1"],
    }
    metadata = {k: v for k, v in spec.metadata.items() if k != "best_epoch"}
    spec = replace(spec, metadata={**metadata, **extra})
    out.mkdir(parents=True, exist_ok=True)
    save_inference_model(model, out, spec)
    summary = {"run": str(run), "epochs": epochs, "batchnorm_refreshed": refresh, "val": metrics}
    (out / "average.json").write_text(json.dumps(summary, indent=2) + "\n")
    return metrics

"""After a run: evaluate its best model on val (and test), plot curves, add its results row."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from train.config import FitConfig
from train.evaluate import evaluate_split, load_model_and_spec
from train.fit import prepare_data
from train.flops import count_flops
from train.metrics import format_report
from train.plots import plot_curves
from train.results import format_duration, upsert_row

RESULTS = Path("docs/results.md")


def results_row(
    name: str, cfg: FitConfig, state: dict, metrics: dict, tta: dict, model, protocol: str
) -> dict[str, Any]:
    h, w = cfg.input_size
    return {
        "model": name,
        "arch": cfg.arch,
        "data": Path(cfg.data_dir).name,
        "split": f"{protocol} (val)",
        "input": f"{h}x{w}x{cfg.channels}",
        "params": int(model.count_params()),
        "mflops": f"{count_flops(model) / 1e6:.1f}",
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "tta_accuracy": tta["accuracy"],
        "epochs": f"{state['best_epoch']} best / {state['epoch']} run / {cfg.epochs} planned",
        "train_time": format_duration(state.get("train_seconds", 0.0)),
    }


def report_run(
    run: Path,
    log: Callable[[str], None] = print,
    results: Path = RESULTS,
    figures: Path | None = None,
    notes: bool = True,
) -> dict[str, Any]:
    """Write ``curves.png``, ``eval-<split>[-tta]/`` and a results row for the run in ``run``.

    ``notes``: log the data's warnings (unreadable files, images added or gone); fit, which
    has just logged them, passes False.

    With ``figures``, the curves and val confusion PNGs are also copied there
    (``<run name>-*.png``) for the docs. The sample grid is not: it shows dataset images, which
    stay out of the repository.
    """
    cfg = FitConfig.load(run)
    state = json.loads((run / "state.json").read_text())
    plot_curves(state["history"], run / "curves.png", f"{run.name} ({cfg.arch})")
    model, spec = load_model_and_spec(run / "model.keras")
    data = prepare_data(cfg, run)
    if notes:  # unreadable files; images added or gone since
        data.log_notes(log)
    data.splits.pop("train")  # not evaluated: its images go (where they are not a view)
    summary: dict[str, Any] = {}
    for split_name, split in data.splits.items():
        for tta in (False, True):
            out = run / (f"eval-{split_name}" + ("-tta" if tta else ""))
            title = f"{run.name} on {split_name}" + (" (flip TTA)" if tta else "")
            m = evaluate_split(model, split, spec.labels, out, tta, title)
            summary[out.name] = m
            log(f"{title}:\n{format_report(m)}")
    row = results_row(
        run.name, cfg, state, summary["eval-val"], summary["eval-val-tta"], model, data.protocol
    )
    upsert_row(results, row)
    log(f"results row written to {results}")
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "curves.png", figures / f"{run.name}-curves.png")
        shutil.copy(run / "eval-val" / "confusion.png", figures / f"{run.name}-confusion.png")
    return summary

"""The results table, ``docs/results.md``: one row per model and dataset, updated in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (
    ("model", "model"),
    ("arch", "arch"),
    ("data", "data"),
    ("split", "split (eval on)"),
    ("input", "input"),
    ("params", "params"),
    ("mflops", "MFLOPs"),
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("tta_accuracy", "acc. flip-TTA"),
    ("epochs", "epochs"),
    ("train_time", "train time"),
)
HEADER = """# Results

Written by `python -m train` (fit, baselines); one row per model and dataset, replaced when it
is re-run.
Models are selected on val; accuracy and macro-F1 are on the split named (val unless stated).
FLOPs = 2 x multiply-accumulates of conv and dense layers, per image. Train time is wall-clock
on the machine that ran it (2 CPU cores unless stated), including per-epoch validation.

"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "/")


def read_rows(path: Path) -> dict[tuple[str, str], list[str]]:
    """Existing rows by model name and dataset (the first and third cells): the baselines of
    another dataset, or a run of the same name on it, get their own row."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        is_row = line.startswith("|") and len(cells) == len(COLUMNS)
        if is_row and cells[0] not in ("model", "") and not set(cells[0]) <= {"-", ":"}:
            rows[(cells[0], cells[2])] = cells
    return rows


def check_table(path: Path) -> None:
    """Refuse a ``path`` that is not a results table this module can rewrite.

    Raises:
        ValueError: a folder, or a file of other text (it would be replaced by the table).
    """
    if path.is_dir():
        raise ValueError(f"--results {path} is a folder: give the table's file (results.md)")
    if path.is_file():
        text = path.read_text(errors="replace")
        if text.strip() and not text.startswith(HEADER.splitlines()[0]):
            raise ValueError(
                f"--results {path} is not a results table written by python -m train (it does "
                "not start with '# Results'): its text would be replaced; give another file"
            )


def upsert_row(path: Path, row: dict[str, Any]) -> Path:
    """Add or replace the row of ``row['model']`` on ``row['data']``; missing fields are left
    blank.

    Raises:
        ValueError: ``path`` is not a results table (:func:`check_table`).
    """
    check_table(path)
    rows = read_rows(path)
    cells = [_cell(row.get(key, "")) for key, _ in COLUMNS]
    rows[(cells[0], cells[2])] = cells
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows.values()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"

"""Metrics for an ``edgefer classify`` CSV, the true label being the folder each image is in.

The CSV is ``path,label,confidence,<one probability column per label>,error`` (with ``--time``,
a ``time`` column after ``path``). Pure Python and numpy (no TensorFlow), so it runs where the
CSV was made.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePath
from typing import Any, NamedTuple

import numpy as np

from edgefer.csvout import Layout, open_csv, unneutralize
from train.metrics import mcnemar_p, summarize


class CsvFormatError(Exception):
    """A CSV that is not an edgefer results file."""


class Row(NamedTuple):
    """One row of an edgefer CSV, read by position (a label may be named like a column)."""

    path: str
    label: str
    error: str
    #: One per label, in the CSV's order; None for a failed row, or one cut short or damaged.
    probabilities: tuple[float, ...] | None


def _row(cells: list[str], layout: Layout) -> Row:
    split = layout.split(cells)
    if split is None:  # a row still being written (watch), or damaged
        return Row(unneutralize(cells[0]), "", "", None)
    try:
        probabilities = tuple(float(c) for c in split.probabilities)
    except ValueError:
        probabilities = None
    return Row(split.path, split.label, split.error, probabilities)


def read_results(path: Path) -> tuple[tuple[str, ...], list[Row]]:
    """The label columns (model order) and the rows.

    Raises:
        CsvFormatError: the header is not ``path,label,confidence,...,error``, or the file is not
            UTF-8 text.
    """
    try:
        with open_csv(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            layout = Layout.of(header)
            if layout is None:
                raise CsvFormatError(f"{path} is not an edgefer CSV (header {header})")
            if layout.faces:
                raise CsvFormatError(
                    f"{path} was written with --faces (one row per face): evaluate-csv scores "
                    "one row per image; classify the face crops without --faces"
                )
            rows = [_row(r, layout) for r in reader if r]
    except UnicodeDecodeError:
        raise CsvFormatError(f"{path} is not an edgefer CSV (not UTF-8 text)") from None
    return layout.labels, rows


def true_label(path: str, labels: tuple[str, ...]) -> str | None:
    """The nearest folder above ``path`` named like a label (its parent, or for an image in a
    class folder's sub-folder, ``Surprise/batch2/x.jpg``, that class, as ``fit`` reads a
    dataset), or None."""
    for folder in PurePath(path).parents:
        if folder.name in labels:
            return folder.name
    return None


def scored_rows(
    labels: tuple[str, ...], rows: list[Row]
) -> tuple[list[tuple[str, str, Row]], dict[str, int]]:
    """``(true label, predicted label, row)`` for each classified row under a label folder
    (:func:`true_label`), and the counts of the rows left out: ``failed_rows`` (an
    ``error``), ``incomplete_rows`` (cut short or damaged) and ``unlabelled_rows`` (under
    other folders)."""
    scored = []
    left_out = dict.fromkeys(("failed_rows", "incomplete_rows", "unlabelled_rows"), 0)
    for row in rows:
        truth = true_label(row.path, labels)
        if truth is None:
            left_out["unlabelled_rows"] += 1
        elif row.error:
            left_out["failed_rows"] += 1
        elif not row.label or row.probabilities is None:
            left_out["incomplete_rows"] += 1
        else:
            scored.append((truth, row.label, row))
    return scored, left_out


def evaluate_rows(labels: tuple[str, ...], rows: list[Row]) -> dict[str, Any]:
    """Metrics over rows whose parent folder is a label and that were classified.

    Failed rows (an ``error``), rows cut short and rows under a folder that is not a label are
    counted apart; a failed row is not scored as a wrong prediction.
    """
    index = {label: i for i, label in enumerate(labels)}
    scored, left_out = scored_rows(labels, rows)
    if not scored:
        raise CsvFormatError(_nothing_scored(labels, rows, left_out))
    strays = sorted({predicted for _, predicted, _ in scored} - set(labels))
    if strays:
        raise CsvFormatError(
            f"predicted labels that are not the CSV's label columns: {', '.join(strays)}"
        )
    y_true = [index[truth] for truth, _, _ in scored]
    y_pred = [index[predicted] for _, predicted, _ in scored]
    p = np.asarray([row.probabilities for *_, row in scored])
    metrics = summarize(np.asarray(y_true), np.asarray(y_pred), labels)
    metrics["loss"] = float(-np.log(np.clip(p[np.arange(len(y_true)), y_true], 1e-7, 1)).mean())
    metrics.update(left_out)
    return metrics


def _nothing_scored(labels: tuple[str, ...], rows: list[Row], left_out: dict[str, int]) -> str:
    """Why no row could be scored, with what a user needs to see the mismatch."""
    if not rows:
        return "the CSV has no rows"
    if left_out["failed_rows"] or left_out["incomplete_rows"]:
        return (
            f"no classified rows under a folder named like a label: {left_out['failed_rows']} "
            f"failed and {left_out['incomplete_rows']} cut short or damaged"
        )
    folders = sorted({PurePath(row.path).parent.name for row in rows})
    shown = ", ".join(folders[:6]) + (f" (and {len(folders) - 6} more)" if folders[6:] else "")
    return (
        f"no row is under a folder named like a label. The CSV's labels: {', '.join(labels)}; "
        f"its images' folders: {shown}. Classified with another model than the one "
        "for this dataset (--model)?"
    )


def _correct_by_path(labels: tuple[str, ...], rows: list[Row]) -> dict[str, tuple]:
    """path -> (predicted label, right?) for the rows :func:`scored_rows` keeps."""
    # By absolute path: one CSV made with `classify val/`, the other with `classify $PWD/val/`.
    scored = scored_rows(labels, rows)[0]
    return {os.path.abspath(row.path): (pred, pred == truth) for truth, pred, row in scored}


def compare_rows(
    a: tuple[tuple[str, ...], list[Row]], b: tuple[tuple[str, ...], list[Row]]
) -> dict[str, Any]:
    """Two models' results on the same images (``read_results`` of each CSV): accuracies, the
    discordant counts, the exact two-sided McNemar p-value and the top-1 agreement.

    Raises:
        CsvFormatError: the CSVs' labels differ (their order may) or they share no scored image.
    """
    # By name, not by column: two models of the same labels in another output order (fit
    # --classes) compare as they are.
    if set(a[0]) != set(b[0]):
        only_a, only_b = sorted(set(a[0]) - set(b[0])), sorted(set(b[0]) - set(a[0]))
        raise CsvFormatError(
            "the CSVs have different labels: "
            + "; ".join(
                f"only {which} has {', '.join(names)}"
                for which, names in (("A", only_a), ("B", only_b))
                if names
            )
        )
    ra, rb = _correct_by_path(*a), _correct_by_path(*b)
    shared = sorted(ra.keys() & rb.keys())
    if not shared:
        raise CsvFormatError("the CSVs share no classified image under a label folder")
    only_a = sum(ra[p][1] and not rb[p][1] for p in shared)
    only_b = sum(rb[p][1] and not ra[p][1] for p in shared)
    return {
        "images": len(shared),
        "only_in_a": len(ra) - len(shared),  # scored in one CSV only: left out of the test
        "only_in_b": len(rb) - len(shared),
        "accuracy_a": sum(ra[p][1] for p in shared) / len(shared),
        "accuracy_b": sum(rb[p][1] for p in shared) / len(shared),
        "only_a_right": only_a,
        "only_b_right": only_b,
        "mcnemar_p": mcnemar_p(only_a, only_b),
        "top1_agreement": sum(ra[p][0] == rb[p][0] for p in shared) / len(shared),
    }

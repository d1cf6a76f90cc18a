"""The results table: rows added and replaced by model and dataset, header kept."""

from train.results import format_duration, read_rows, upsert_row


def test_upsert_adds_then_replaces(tmp_path):
    path = tmp_path / "results.md"
    upsert_row(path, {"model": "a", "accuracy": 0.5, "params": 1234})
    upsert_row(path, {"model": "b", "accuracy": 0.6})
    upsert_row(path, {"model": "a", "accuracy": 0.7, "mflops": "12.5"})
    text = path.read_text()
    assert text.startswith("# Results")
    rows = read_rows(path)
    assert list(rows) == [("a", ""), ("b", "")]
    a = rows[("a", "")]
    assert "0.7000" in a and "12.5" in a and "1,234" not in a
    assert text.count("| a |") == 1


def test_format_duration():
    assert format_duration(25) == "25 s"
    assert format_duration(600) == "10 min"
    assert format_duration(3 * 3600) == "3.0 h"


def test_rows_are_per_model_and_dataset(tmp_path):
    # Baselines on a user's own data replaced the FER2013 rows of the same name.
    table = tmp_path / "results.md"
    upsert_row(table, {"model": "baseline-mlp", "data": "fer2013", "accuracy": 0.4288})
    upsert_row(table, {"model": "baseline-mlp", "data": "ahegao6", "accuracy": 0.52})
    upsert_row(table, {"model": "baseline-mlp", "data": "fer2013", "accuracy": 0.43})
    rows = read_rows(table)
    assert sorted(rows) == [("baseline-mlp", "ahegao6"), ("baseline-mlp", "fer2013")]
    assert rows[("baseline-mlp", "fer2013")][7] == "0.4300"


def test_a_folder_or_another_file_is_not_taken_for_the_table(tmp_path):
    # A folder ended in IsADirectoryError after the evaluation (or the baselines' fits); a file
    # of other text (notes, a doc) was replaced by the table, its text gone.
    import pytest

    notes = tmp_path / "notes.md"
    notes.write_text("# My notes\n\nkeep me\n")
    for path in (tmp_path, notes):
        with pytest.raises(ValueError, match="--results"):
            upsert_row(path, {"model": "a", "accuracy": 0.5})
    assert notes.read_text() == "# My notes\n\nkeep me\n"
    empty = tmp_path / "empty.md"
    empty.write_text("")
    upsert_row(empty, {"model": "a", "accuracy": 0.5})  # an empty file is a new table
    upsert_row(empty, {"model": "b", "accuracy": 0.5})
    assert list(read_rows(empty)) == [("a", ""), ("b", "")]


def test_baselines_refuse_a_results_folder_before_fitting(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from train.cli import app

    for label in ("a", "b"):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(10):
            pixels = np.random.default_rng(i).integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "d" / label / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = ["baselines", "d", "--size", "12", "--max-iter", "2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--results", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output, result.output
    assert not out.exists()  # refused before the fits

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

"""The results table: rows added and replaced by model name, header kept."""

from train.results import format_duration, read_rows, upsert_row


def test_upsert_adds_then_replaces(tmp_path):
    path = tmp_path / "results.md"
    upsert_row(path, {"model": "a", "accuracy": 0.5, "params": 1234})
    upsert_row(path, {"model": "b", "accuracy": 0.6})
    upsert_row(path, {"model": "a", "accuracy": 0.7, "mflops": "12.5"})
    text = path.read_text()
    assert text.startswith("# Results")
    rows = read_rows(path)
    assert list(rows) == ["a", "b"]
    assert "0.7000" in rows["a"] and "12.5" in rows["a"] and "1,234" not in rows["a"]
    assert text.count("| a |") == 1


def test_format_duration():
    assert format_duration(25) == "25 s"
    assert format_duration(600) == "10 min"
    assert format_duration(3 * 3600) == "3.0 h"

"""evaluate-csv: metrics from an edgefer CSV, truth from each path's parent folder."""

import json

import pytest
from typer.testing import CliRunner

from train.cli import app
from train.csveval import CsvFormatError, evaluate_rows, read_results

CSV = """path,label,confidence,happy,sad,error
val/happy/1.png,happy,0.900000,0.900000,0.100000,
val/happy/2.png,sad,0.600000,0.400000,0.600000,
val/sad/3.png,sad,0.800000,0.200000,0.800000,
val/sad/4.png,,,,,truncated or corrupt image
other/5.png,happy,0.700000,0.700000,0.300000,
"""


def test_rows_scored_by_parent_folder_failed_rows_apart(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text(CSV)
    labels, rows = read_results(path)
    assert labels == ("happy", "sad")
    m = evaluate_rows(labels, rows)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1], [0, 1]]
    assert m["failed_rows"] == 1 and m["unlabelled_rows"] == 1


def test_not_an_edgefer_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(CsvFormatError):
        read_results(path)


def test_cli_writes_metrics_json_and_png(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text(CSV)
    result = CliRunner().invoke(app, ["evaluate-csv", str(path), "--labels-from-parent-dir"])
    assert result.exit_code == 0, result.output
    assert "accuracy=0.6667" in result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_cli_exit_2_on_bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("nope\n")
    assert CliRunner().invoke(app, ["evaluate-csv", str(path)]).exit_code == 2

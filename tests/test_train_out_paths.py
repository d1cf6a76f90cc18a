"""--out given a file where a command writes a folder (or a folder where it writes a file) is a
usage error before any work, not a traceback after it."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from train.cli import app

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "edgefer-fer2013-int8.tflite"


def _said(result) -> str:
    # Typer's error box wraps long paths: read its text as one line.
    return " ".join(result.output.replace("│", " ").split())


@pytest.fixture
def taken(tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize(
    "command",
    ["evaluate", "calibrate", "baselines", "split", "average", "report", "fold", "from-tflite"],
)
def test_a_file_given_for_an_output_folder_is_refused_up_front(
    command, taken, tmp_path, tiny_keras, tiny_data, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # image caches and results tables go here
    run = tmp_path / "run"
    run.mkdir()
    args = {
        "evaluate": ["evaluate", str(tiny_keras), str(tiny_data), "--out"],
        "calibrate": ["calibrate", str(tiny_keras), str(tiny_data), "--out"],
        "baselines": ["baselines", str(tiny_data), "--max-iter", "5", "--results", "r.md", "--out"],
        "split": ["split", str(run), "--out"],
        "average": ["average", str(run), "--out"],
        "report": ["report", str(run), "--figures"],
        "fold": ["fold", str(tiny_keras), str(tiny_keras), "--out"],
        "from-tflite": ["from-tflite", str(SHIPPED), str(tiny_data), "--out"],
    }[command]
    result = CliRunner().invoke(app, [*args, str(taken)])
    assert result.exit_code == 2, result.output
    assert "is a file" in _said(result), result.output
    assert taken.read_text() == "not a folder\n"


def test_robustness_out_that_is_a_folder_is_refused_before_measuring(tmp_path):
    data = tmp_path / "val" / "happy"
    data.mkdir(parents=True)
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8)
        Image.fromarray(pixels).save(data / f"{i}.png")
    folder = tmp_path / "results"
    folder.mkdir()
    result = CliRunner().invoke(
        app, ["robustness", str(tmp_path / "val"), "--limit", "2", "--out", str(folder)]
    )
    assert result.exit_code == 2, result.output
    assert "is a directory" in _said(result), result.output


def test_evaluate_csv_out_an_existing_file_without_a_suffix_is_written(tmp_path):
    csv = tmp_path / "out.csv"
    csv.write_text(
        "path,label,confidence,happy,sad,error\n"
        "val/happy/1.png,happy,0.9,0.9,0.1,\n"
        "val/sad/2.png,happy,0.6,0.6,0.4,\n"
    )
    target = tmp_path / "metrics"
    target.write_text("")
    result = CliRunner().invoke(app, ["evaluate-csv", str(csv), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["accuracy"] == 0.5

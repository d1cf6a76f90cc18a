"""The README's two commands stay true: CI runs the test command verbatim; the demo works."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edgefer.cli import EXIT_OK, app
from edgefer.shipped import default_model_path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.+?)\n```", section, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    setup, tests = readme_commands()
    assert "pytest" in tests and "edgefer classify samples/" in setup
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines


def test_demo_classifies_the_samples_with_the_shipped_model(tmp_path):
    assert default_model_path().is_file(), "the shipped default model is missing from models/"
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(app, ["classify", str(REPO / "samples"), "-o", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(Path(r["path"]).name for r in rows) == [
        "collins.jpg",
        "hopper.jpg",
        "varshney-profile.jpg",
    ]
    assert all(r["label"] and not r["error"] for r in rows)


def readme_python() -> str:
    section = (REPO / "README.md").read_text().split("### From Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    return code


def test_the_readme_python_example_prints_what_its_comments_say():
    code = readme_python()
    # What it prints is written in its comments: comment-only lines, and those after a print.
    expected = [
        line.split("# ", 1)[1]
        for line in code.splitlines()
        if line.lstrip().startswith("#") or (line.lstrip().startswith("print(") and "# " in line)
    ]
    assert len(expected) == 3, expected
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEFER_MODEL", "EDGEFER_RUNTIME")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected

"""What a person sees: terminal and log output from untrusted file names, in narrow, wide and
non-UTF-8 terminals, and the messages for common mistakes."""

import csv
import hashlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgefer import notify
from edgefer.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, app, show
from edgefer.csvout import csv_line, printable
from edgefer.photos import NO_FACE
from edgefer.pipeline import Result
from edgefer.report import Report
from edgefer.summary import REASONS_SHOWN, Summary

SAMPLES = Path(__file__).parent.parent / "samples"
runner = CliRunner()
ESC = "\x1b"


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_control_characters_in_names_never_reach_the_terminal(tmp_path, int8_model):
    # A file name with ESC [2J cleared the screen from the failures table; one with a CR hid
    # what came before it. Uploads to a watched folder are anyone's names.
    folder = tmp_path / f"in{ESC}[31m"
    folder.mkdir()
    (folder / f"evil{ESC}[2J\rhidden.png").write_bytes(b"not an image")
    result = invoke("classify", folder, "-m", int8_model, "-o", tmp_path / "x.csv")
    assert result.exit_code == EXIT_FAILURES
    assert ESC not in result.output and "\r" not in result.output
    assert "evil\\x1b[2J\\x0dhidden.png" in result.output
    result = invoke("classify", tmp_path / f"gone{ESC}[2J" / "x.jpg", "-o", tmp_path / "y.csv")
    assert ESC not in result.output and "gone\\x1b[2J" in result.output
    # The CSV is data: its names find the files (and csv quotes what needs quoting).
    assert f"gone{ESC}[2J" in (tmp_path / "y.csv").read_text()
    result = invoke("classify", folder, "-m", int8_model, "-o", folder / "no" / "x.csv")
    assert result.exit_code == EXIT_USAGE and "in\\x1b[31m" in result.output
    assert ESC not in result.output
    result = invoke("summary", tmp_path / "x.csv")
    assert "evil\\x1b[2J" in result.output and ESC not in result.output
    # The CR did not split the row (csv quoted "\n", not "\r"): summary saw two torn rows.
    assert "incomplete" not in result.output and "1 failed" in result.output
    with open(tmp_path / "x.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["path"] == str(folder / f"evil{ESC}[2J\rhidden.png")


def test_control_characters_in_a_warning_are_escaped(tmp_path):
    # Warnings name folders too ("no images found in ..."): the checks above cover errors and
    # tables, and a warning that printed the name as it is would clear the screen.
    empty = tmp_path / f"empty{ESC}[2J\rx"
    empty.mkdir()
    result = invoke("classify", empty, "-o", tmp_path / "x.csv")
    assert result.exit_code == EXIT_OK, result.output
    assert ESC not in result.output and "\r" not in result.output
    assert "warning: no images found in " in result.output
    assert "empty\\x1b[2J\\x0dx" in result.output


def test_a_record_with_a_cr_is_quoted_and_reads_back_whole():
    # Only that cell: an empty cell quoted ("") could be torn after its opening quote, which
    # --append's repair would have taken for a whole row.
    line = csv_line(["a\rb.png", "happy", "", "0.5"])
    assert line == '"a\rb.png",happy,,0.5\n'
    assert next(csv.reader(io.StringIO(line, newline=""))) == ["a\rb.png", "happy", "", "0.5"]
    assert csv_line(["a\nb.png", 'q"z']) == '"a\nb.png","q""z"\n'
    assert csv_line(["a.png", "happy"]) == "a.png,happy\n"


def test_log_lines_show_control_characters_escaped_and_keep_tracebacks(capsys, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    before = list(root.handlers)
    for handler in before:  # an earlier test's handler, on that test's stderr
        root.removeHandler(handler)
    try:
        notify.setup_logging()
        log = logging.getLogger("edgefer.test")
        log.warning("%s: not an image", f"in/a{ESC}[2J\nINFO forged.png")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("WARNING in/a\\x1b[2J\\x0aINFO forged.png: not an image")
    assert lines[1].endswith("ERROR failed") and lines[2] == "Traceback (most recent call last):"


def test_printable_escapes_c0_c1_and_del_and_keeps_the_rest():
    assert printable("a\x00\x07\x1b\x7f\x85\x9f b\u00e9\u5199") == (
        "a\\x00\\x07\\x1b\\x7f\\x85\\x9f b\u00e9\u5199"
    )
    assert printable("caf\udce9.jpg") == "caf\\xe9.jpg"  # a Latin-1 name's byte, as before
    # Line ends to str.splitlines (a journal line forged), and bidi overrides (text reordered).
    assert printable("a\u2028b\u2029c\u202ed\u2066e") == "a\\u2028b\\u2029c\\u202ed\\u2066e"


def test_a_system_error_is_its_text_alone_so_files_share_a_reason(tmp_path, int8_model):
    # "[Errno 40] Too many levels of symbolic links: '/…/a.jpg'" made every file a reason of
    # its own in the failures table.
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    out = tmp_path / "x.csv"
    result = invoke("classify", tmp_path, SAMPLES / "collins.jpg" / "x.jpg", "-o", out)
    assert result.exit_code == EXIT_FAILURES
    errors = sorted(row["error"] for row in csv.DictReader(out.open()))  # rows by path
    assert errors == ["not a directory"] + ["too many levels of symbolic links"] * 2
    assert " 2 " in next(x for x in result.output.splitlines() if "symbolic" in x)


def _failed(path, error):
    return Result(path, error=error)


def test_the_failures_table_lists_the_ten_commonest_reasons_then_the_rest_as_one_row():
    summary = Summary(("a", "b"))
    for i in range(REASONS_SHOWN + 5):
        for j in range(i + 1):
            summary.add(_failed(f"{i}-{j}.jpg", f"reason {i:02d}"))
    text = io.StringIO()
    Console(file=text, width=200).print(summary.render())
    output = text.getvalue()
    assert "reason 14" in output and "reason 05" in output and "reason 04" not in output
    hidden = sum(range(1, 6))
    assert any(
        x.split("│")[1:3] == [" 5 other reasons ", f" {hidden:>5} "] for x in output.split("\n")
    )


def test_an_example_path_is_folded_not_cut(tmp_path):
    summary = Summary(("a", "b"))
    long = "/photos/camera-front-door-2026-11-30T08-05-09-snapshot-motion-event-00017.jpg"
    summary.add(_failed(long, "truncated or corrupt image"))
    text = io.StringIO()
    Console(file=text, width=80).print(summary.render())
    assert "…" not in text.getvalue()
    cells = [x.split("│")[3].strip() for x in text.getvalue().splitlines() if x.count("│") == 4]
    assert "".join(cells) == long


def test_tables_to_a_pipe_or_file_are_as_wide_as_they_need(int8_model, monkeypatch):
    # At 80 columns `edgefer info | grep sha256` gave 52 of the 64 hex digits.
    monkeypatch.delenv("COLUMNS")
    result = invoke("info", int8_model)
    digest = hashlib.sha256(int8_model.read_bytes()).hexdigest()
    (line,) = [x for x in result.output.splitlines() if "sha256" in x]
    assert digest in line


def test_counts_per_period_are_never_cut_in_a_narrow_terminal(tmp_path):
    labels = [f"label{i}" for i in range(10)]
    path = tmp_path / "many.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "time", "label", "confidence", *labels, "error"])
        for i in range(10 * 12_345):
            probs = ["0.000000"] * 10
            probs[i % 10] = "1.000000"
            when = "2026-11-30T08:00:00+00:00"
            writer.writerow([f"{i}.png", when, labels[i % 10], "1.000000", *probs, ""])
    report = Report(0.5, "hour")
    report.read(path)
    text = io.StringIO()
    console = Console(file=text, width=60, force_terminal=True, color_system=None)
    show(console, report.render(), report.min_width(console))
    (row,) = [x for x in text.getvalue().splitlines() if x.startswith("2026-11-30T08")]
    assert row.split()[1:] == ["12345"] * 10 + ["0"]
    assert console.width == 60  # for that table only


def test_a_warning_is_one_line_however_long_its_path(tmp_path, int8_model):
    folder = tmp_path / ("b" * 120)
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "c.jpg").write_bytes((SAMPLES / "collins.jpg").read_bytes())
    result = invoke("classify", folder, "-m", int8_model, "-o", tmp_path / "x.csv")
    (line,) = [x for x in result.output.splitlines() if x.startswith("warning:")]
    assert line.endswith(": they are in subfolders, add -r")


def test_classify_and_summary_count_the_same_low_confidence_rows(tmp_path, int8_model):
    out = tmp_path / "l.csv"
    result = invoke("classify", SAMPLES, "-m", int8_model, "-o", out, "-q")
    assert result.exit_code == EXIT_OK
    # A threshold at a confidence exactly as the CSV has it: the raw float is a hair above or
    # below it, and classify and summary disagreed.
    conf = float(next(csv.DictReader(out.open()))["confidence"])
    for threshold in (conf, conf + 1e-6):
        ran = invoke(
            "classify", SAMPLES, "-m", int8_model, "-o", out, "--low-confidence", threshold
        )
        read = invoke("summary", out, "--low-confidence", threshold)
        below = [next(x for x in r.output.splitlines() if " below " in x) for r in (ran, read)]
        n = [x.split(" below ")[0].split()[-1] for x in below]
        assert n[0] == n[1], below
        assert f"below {threshold:g} confidence" in below[1]


def test_the_threshold_is_shown_as_given():
    summary = Summary(("a",), low_confidence=0.999)
    text = io.StringIO()
    Console(file=text, width=200).print(summary.render())
    assert "below 0.999 confidence" in text.getvalue()
    text = io.StringIO()
    Console(file=text, width=200).print(Summary(("a",)).render())
    assert "below 0.50 confidence" in text.getvalue()


def test_a_model_from_the_environment_is_named_as_such(tmp_path):
    result = invoke("classify", SAMPLES, "-o", "-", env={"EDGEFER_MODEL": "/no/such.tflite"})
    assert result.exit_code == EXIT_USAGE
    assert "error: $EDGEFER_MODEL=/no/such.tflite: model not found" in result.output
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"x")
    result = invoke("info", env={"EDGEFER_MODEL": str(bad)})
    assert f"$EDGEFER_MODEL={bad}: not a TFLite model" in " ".join(result.output.split())
    result = invoke("info", bad)  # named on the command line: no mention of the variable
    assert "EDGEFER_MODEL" not in result.output


def test_no_progress_bar_over_csv_rows_on_the_same_terminal(int8_model, monkeypatch):
    import edgefer.cli as cli

    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=80))
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    result = invoke("classify", SAMPLES, "-m", int8_model, "-o", "-")
    assert result.exit_code == EXIT_OK and "classifying" not in screen.getvalue()
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: False)  # `-o - > labels.csv`
    monkeypatch.setattr(cli.Progress, "start", lambda self: screen.write("classifying"))
    invoke("classify", SAMPLES, "-m", int8_model, "-o", "-")
    assert "classifying" in screen.getvalue()


def _edgefer(*args, stdin=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "edgefer", *map(str, args)],
        stdin=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_a_dash_among_the_inputs_is_standard_input(tmp_path, int8_model):
    with open(SAMPLES / "collins.jpg", "rb") as stdin:
        done = _edgefer("classify", "-", "-m", int8_model, "-o", "-", "-q", stdin=stdin)
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader(io.StringIO(done.stdout.decode()))
    assert row["path"] == "/dev/stdin" and row["label"] and not row["error"]
    # A file named "-" is ./- (a Path made of "./-" is "-": it read standard input too).
    (tmp_path / "-").write_bytes((SAMPLES / "collins.jpg").read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "edgefer", "classify", "./-", "-m", int8_model, "-o", "-", "-q"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    (row,) = csv.DictReader(io.StringIO(done.stdout.decode()))
    assert row["path"] == "./-" and row["label"] and not row["error"], done.stderr
    (tmp_path / "-").write_text("not a CSV\n")
    done = subprocess.run(
        [sys.executable, "-m", "edgefer", "summary", "./-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert b"./- is not a CSV written by edgefer" in done.stderr


def test_the_csv_on_stdout_is_utf8_whatever_the_terminal_encodes(tmp_path, int8_model):
    # With PYTHONIOENCODING=ascii (or a Latin-1 locale) the first name with an "ä" ended the
    # run after the header, exit 1; summary and info ended in a traceback.
    folder = tmp_path / "u"
    folder.mkdir()
    for name in ("bädé.jpg", "写真.jpg"):
        (folder / name).write_bytes((SAMPLES / "collins.jpg").read_bytes())
    for encoding in ("ascii", "latin-1"):
        env = {"PYTHONIOENCODING": encoding}
        done = _edgefer("classify", folder, "-m", int8_model, "-o", "-", env=env)
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8"))))
        assert [Path(r["path"]).name for r in rows] == ["bädé.jpg", "写真.jpg"]
        out = tmp_path / f"{encoding}.csv"
        done = _edgefer(
            "classify", folder, tmp_path / "写.jpg", "-m", int8_model, "-o", out, env=env
        )
        assert done.returncode == 1 and b"Traceback" not in done.stderr, done.stderr
        assert b"\\u5199.jpg" in done.stdout  # the summary's example, escaped
        done = _edgefer("summary", out, env=env)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("n", [1, 2])
def test_the_totals_count_one_image_and_two_images(n):
    # "1 images without a face": each count of the --faces totals took its noun in the plural.
    one = n == 1
    images, faces = ("image", "face") if one else ("images", "faces")
    none = Summary(("a", "b"), faces=True)  # n photos without a face
    found = Summary(("a", "b"), faces=True)  # n photos with one face, below 0.50
    for i in range(n):
        none.add(Result(f"{i}.jpg", error=NO_FACE))
        found.add(Result(f"{i}.jpg", "a", 0.25, (0.25, 0.75), face=1))
    lines = []
    for summary in (none, found):
        text = io.StringIO()
        Console(file=text, width=200).print(summary.render())
        lines.append(text.getvalue().splitlines()[-1])
    assert lines == [
        f"{n} {images}, 0 faces, {n} {images} without a face, 0 failed, 0 faces below 0.50 "
        "confidence",
        f"{n} {images}, {n} {faces}, 0 images without a face, 0 failed, {n} {faces} below 0.50 "
        "confidence",
    ]


@pytest.mark.parametrize("n", [1, 2])
def test_an_interrupted_run_counts_one_file_and_two_files(tmp_path, monkeypatch, n):
    from edgefer import cli

    def interrupted(classifier, paths, *args, **kwargs):
        yield from (Result(str(p), error="not an image or unsupported format") for p in paths[:n])
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "classify_paths", interrupted)
    result = invoke("classify", SAMPLES, "-o", tmp_path / "x.csv")
    assert result.exit_code == 130
    assert f"interrupted after {n} file{'' if n == 1 else 's'}; no CSV written" in result.output

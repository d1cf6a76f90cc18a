import csv
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS, write_dataset
from PIL import Image
from typer.testing import CliRunner

from edgefer.cli import EXIT_FAILURES, EXIT_OK, EXIT_PIPE, EXIT_USAGE, app
from edgefer.shipped import (
    DEFAULT_MODEL_NAME,
    SHIPPED_MODELS,
    default_model_path,
    model_path,
    shipped_models_dir,
)

runner = CliRunner()
SAMPLES = Path(__file__).parent.parent / "samples"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_classify_a_folder(tmp_path, tiny_data, int8_model):
    out = tmp_path / "labels.csv"
    result = run("classify", tiny_data, "-r", "-m", int8_model, "-o", out, "-b", "4", "-t", "1")
    assert result.exit_code == EXIT_OK, result.output
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "confidence", *LABELS, "error"]
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    assert len(rows) == 60
    for row in rows:
        probs = [float(row[label]) for label in LABELS]
        assert abs(sum(probs) - 1) < 1e-3 and row["label"] == LABELS[int(np.argmax(probs))]
        assert float(row["confidence"]) == max(probs)
    correct = sum(r["label"] == os.path.basename(os.path.dirname(r["path"])) for r in rows)
    assert correct >= 54
    assert "images/s" in result.output and "mean confidence" in result.output


def make_bad_inputs(folder, good_png):
    folder.mkdir()
    data = good_png.read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("plain text, not a JPEG")
    Image.new("RGB", (64, 64), "white").save(folder / "whole.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:300])
    (folder / "vector.svg").write_text("<svg/>")  # not scanned: named below
    Image.new("L", (5000, 5000)).save(folder / "bomb.png")
    os.symlink(folder / "gone.png", folder / "broken.png")
    (folder / "dir.jpg").mkdir()
    (folder / "ok.png").write_bytes(data)
    (folder / ".hidden.png").write_bytes(data)  # ignored in a folder scan
    (folder / "notes.txt").write_text("ignored")


def test_every_bad_input_gets_an_error_row(tmp_path, tiny_data, int8_model):
    bad = tmp_path / "bad"
    make_bad_inputs(bad, tiny_data / "top" / "000.png")
    out = tmp_path / "out.csv"
    result = run(
        "classify", bad, bad / "vector.svg", "-m", int8_model, "-o", out, "--max-pixels", 10**6
    )
    assert result.exit_code == EXIT_FAILURES, result.output
    errors = {os.path.basename(r["path"]): r["error"] for r in read_rows(out)}
    assert errors == {
        "bomb.png": errors["bomb.png"],
        "broken.png": "broken symlink",
        "dir.jpg": "is a directory",
        "empty.jpg": "empty file",
        "ok.png": "",
        "text.jpg": "not an image or unsupported format",
        "truncated.jpg": "truncated or corrupt image",
        "vector.svg": "not an image or unsupported format",
        "whole.jpg": "",
    }
    assert errors["bomb.png"].startswith("too large")
    assert "failures" in result.output and "broken symlink" in result.output


def test_an_unreadable_file_named_explicitly_gets_its_row(
    tmp_path, tiny_data, int8_model, monkeypatch
):
    # Typer's path check refused the whole run (exit 2, no CSV) for one unreadable file named
    # on the command line; found in a folder, the same file got a "permission denied" row.
    # (Simulated: the tests may run as root, which reads any file.)
    from edgefer import preprocess

    locked = tmp_path / "locked.png"
    locked.write_bytes((tiny_data / "top" / "000.png").read_bytes())
    real_access, real_open = os.access, preprocess._open_any

    def access(path, mode, *args, **kwargs):
        return False if Path(path) == locked else real_access(path, mode, *args, **kwargs)

    def open_any(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(preprocess, "_open_any", open_any)
    out = tmp_path / "out.csv"
    result = run("classify", locked, tiny_data / "top" / "001.png", "-m", int8_model, "-o", out)
    assert result.exit_code == EXIT_FAILURES, result.output
    errors = {os.path.basename(r["path"]): r["error"] for r in read_rows(out)}
    assert errors == {"locked.png": "permission denied", "001.png": ""}


def test_stdout_output(tiny_data, int8_model):
    result = run("classify", tiny_data / "left", "-m", int8_model, "-o", "-", "-q")
    assert result.exit_code == EXIT_OK
    lines = result.stdout.splitlines()
    assert lines[0] == "path,label,confidence,top,left,center,error" and len(lines) == 21


def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path, tiny_data, int8_model):
    # `-o - | head`: "error: cannot write -: Broken pipe" and exit 2 (a usage error), or, for
    # the summary of `-o file | head`, Rich's exit 1 ("some files failed"). Now SIGPIPE's 141.
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has already gone: the first flush fails
    out = tmp_path / "o.csv"
    base = ["classify", str(tiny_data), "-r", "-m", str(int8_model)]
    try:
        for args in (["-o", "-"], ["-o", str(out)]):
            proc = subprocess.run(
                [sys.executable, "-m", "edgefer", *base, *args],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
            assert (proc.returncode, proc.stderr) == (EXIT_PIPE, ""), args
    finally:
        os.close(write_end)
    assert len(read_rows(out)) == 60  # the CSV was done before the summary's reader was missed


def test_append_adds_only_new_files(tmp_path, int8_model):
    data = write_dataset(tmp_path / "d", 3, seed=5)
    out = tmp_path / "out.csv"
    assert run("classify", data / "top", "-m", int8_model, "-o", out).exit_code == EXIT_OK
    result = run("classify", data, "-r", "-m", int8_model, "-o", out, "--append")
    assert result.exit_code == EXIT_OK and "3 already in the CSV" in result.output
    paths = [r["path"] for r in read_rows(out)]
    assert len(paths) == len(set(paths)) == 9


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "{tmp}/missing.tflite"], "model not found"),
        (["-m", "{tmp}/garbage.tflite"], "no TFLite flatbuffer identifier (TFL3)"),
        (["-m", "{tmp}/torn.tflite"], "not a valid TFLite model"),
        (["-m", "{tmp}/empty.tflite"], "the file is empty"),
        (["-m", "{tmp}/model.keras"], "a Keras .keras model? `edgefer convert` it"),
        (["-o", "{tmp}/no/such/dir/out.csv"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_without_traceback(tmp_path, tiny_data, int8_model, args, message):
    (tmp_path / "garbage.tflite").write_bytes(b"\x00" * 64)
    (tmp_path / "torn.tflite").write_bytes(int8_model.read_bytes()[:2000])
    (tmp_path / "empty.tflite").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as keras_file:  # the .keras layout
        keras_file.writestr("config.json", "{}")
        keras_file.writestr("model.weights.h5", b"\x89HDF")
    argv = ["classify", str(tiny_data), "-o", str(tmp_path / "out.csv"), "-m", str(int8_model)]
    argv += [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == EXIT_USAGE
    assert message in result.output and "Traceback" not in result.output


def test_append_to_a_csv_of_another_model_exits_2(tmp_path, tiny_data, int8_model):
    out = tmp_path / "out.csv"
    out.write_text("path,label,confidence,happy,sad,error\n")
    result = run("classify", tiny_data, "-m", int8_model, "-o", out, "--append")
    assert result.exit_code == EXIT_USAGE and "other labels" in result.output


def test_missing_arguments_are_usage_errors():
    assert run("classify").exit_code == EXIT_USAGE
    assert run("classify", ".", "-b", "0", "-o", "x.csv").exit_code == EXIT_USAGE


def test_info(int8_model):
    result = run("info", int8_model)
    assert result.exit_code == EXIT_OK, result.output
    for text in ("top, left, center", "16x16x1", "int8", "sha256", "ai-edge-litert"):
        assert text in result.output


def test_info_shows_provenance_as_a_person_reads_it():
    from edgefer.cli import _readable

    assert _readable(0.6946224575090555) == "0.6946" and _readable(137800320) == "137,800,320"
    assert _readable(0.696) == "0.6960" and _readable(2.0) == "2" and _readable(1.5e-5) == "1.5e-05"
    assert _readable({"dropped": 313, "widths": [48, 96]}) == "dropped 313, widths [48, 96]"
    assert _readable(True) == "True" and _readable("../data/train") == "../data/train"


def test_cli_never_imports_tensorflow(tmp_path, tiny_data, int8_model):
    code = (
        "import sys, runpy\n"
        "sys.argv = ['edgefer'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('edgefer', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "    print('HEAVY', heavy, 'EXIT', e.code)\n"
    )
    for args in (
        ["--help"],
        ["info", str(int8_model)],
        ["classify", str(tiny_data), "-r", "-m", str(int8_model), "-o", str(tmp_path / "o.csv")],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
        )
        assert "HEAVY [] EXIT 0" in proc.stdout, (args, proc.stdout[-500:], proc.stderr[-500:])


def test_python_dash_m_and_version():
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("edgefer ")


def _help(*command: str, columns: int) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_keeps_brackets_globs_and_placeholders_literally():
    # Rich markup mode read "[faces]" and "[default: 40]" as tags and dropped them, so the help
    # told users to `pip install 'edgefer'` for the Haar detector.
    flat = {c: " ".join(_help(c, columns=300).split()) for c in ("classify", "watch", "convert")}
    assert "pip install 'edgefer[faces]'" in flat["classify"]
    assert "in pixels [default: 40]" in flat["classify"]
    assert "surest first (0 or unset: all)" in flat["watch"]
    assert '"edgefer[train]"' in flat["convert"]
    assert "<label>/<image>" in flat["convert"]
    assert ".*, ~*, *.tmp, *.part, *.crdownload" in flat["watch"]


def test_info_help_says_its_model_argument_defaults_to_edgefer_model():
    # It said "(default: the default)", while `EDGEFER_MODEL=robust edgefer info` shows robust.
    flat = " ".join(_help("info", columns=300).split())
    argument = flat.split("Arguments")[1].split("Options")[0]
    assert "default: $EDGEFER_MODEL, else the shipped default" in argument, argument


def test_device_help_cuts_nothing_at_80_columns():
    # Rich cuts a cell's unbreakable token with an ellipsis: the --faces help lost its column
    # names ("(face,x,y,w,h,de…") and the haar hint its extra ("'edgefer[faces]'…").
    for command in ("classify", "watch", "info", "summary"):
        text = _help(command, columns=80)
        assert "…" not in text, (command, [line for line in text.splitlines() if "…" in line])


def test_help_paragraphs_reflow_to_an_80_column_terminal():
    # The docstring's own line breaks must not survive into an 80-column help: that left
    # one-word lines ("folder, else") between full ones.
    for command in ("classify", "watch", "convert"):
        paragraphs, lines = [], []
        for line in _help(command, columns=80).split("╭")[0].splitlines():
            if line.strip():
                lines.append(line.rstrip())
            elif lines:
                paragraphs.append(lines)
                lines = []
        assert len(paragraphs) >= 3, paragraphs  # usage, summary, description
        for body in paragraphs[1:]:
            assert all(len(line) > 60 for line in body[:-1]), (command, body)


def test_paths_that_look_like_rich_markup_are_printed_as_they_are(tmp_path, int8_model):
    # "[/x]" in a folder name raised a MarkupError from the warning; "[red]" vanished from the
    # failures table.
    empty = tmp_path / "[/x]"
    empty.mkdir(parents=True)  # the folder "[" holding "x]"
    result = run("classify", empty, "-m", int8_model, "-o", tmp_path / "a.csv")
    assert result.exit_code == EXIT_OK, result.output
    assert f"no images found in {empty}" in " ".join(result.output.split())
    assert "add -r" not in result.output
    bad = tmp_path / "shots[red]"
    bad.mkdir()
    (bad / "x.jpg").write_text("not a JPEG")
    args = ["classify", str(bad), "-m", str(int8_model), "-o", str(tmp_path / "b.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_FAILURES, result.output
    assert f"{bad}/x.jpg" in result.output
    result = run("classify", bad, "-m", int8_model, "-o", tmp_path / "no[/dir]" / "c.csv")
    assert result.exit_code == EXIT_USAGE and "no[/dir]" in result.output


def test_a_folder_that_gives_no_images_is_named_and_class_folders_need_r(
    tiny_data, int8_model, tmp_path
):
    image = next((tiny_data / "top").iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["classify", image, tiny_data, empty, "-m", int8_model, "-o", tmp_path / "a.csv"]
    result = run(*args)
    assert result.exit_code == EXIT_OK and len(read_rows(tmp_path / "a.csv")) == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert f"warning: no images found in {tiny_data}: they are in subfolders, add -r" in lines
    assert f"warning: no images found in {empty}" in lines
    result = run(*args, "-r")
    assert "no images found" in result.output and str(tiny_data) not in result.output


def test_an_output_directory_is_a_usage_error_before_any_work(tmp_path, tiny_data, int8_model):
    result = run("classify", tiny_data, "-r", "-m", int8_model, "-o", tmp_path)
    assert result.exit_code == EXIT_USAGE
    assert "is a directory" in result.output and "images/s" not in result.output


def test_non_utf8_file_names_are_classified_and_skipped_on_append(tmp_path, tiny_data, int8_model):
    # They crashed the run with UnicodeEncodeError at the CSV writer, losing every row.
    folder = tmp_path / "latin1"
    folder.mkdir()
    good = next(tiny_data.rglob("*.png")).read_bytes()
    with open(os.path.join(str(folder), os.fsdecode(b"caf\xe9.png")), "wb") as f:
        f.write(good)
    with open(os.path.join(str(folder), os.fsdecode(b"bad\xe9.png")), "wb") as f:
        f.write(b"not a PNG")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["classify", str(folder), "-m", str(int8_model), "-o", str(out)])
    assert result.exit_code == EXIT_FAILURES, result.output
    rows = read_rows(out)
    assert [r["path"] for r in rows] == [f"{folder}/bad\\xe9.png", f"{folder}/caf\\xe9.png"]
    assert rows[1]["label"] and not rows[0]["label"]
    result = run("classify", folder, "-m", int8_model, "-o", out, "--append")
    assert result.exit_code == EXIT_OK and "2 already in the CSV" in result.output


def test_sigterm_ends_the_run_like_ctrl_c(tmp_path, int8_model):
    # Python's default SIGTERM left the temp CSV behind (`timeout`, `kill`, a stopping service).
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("L", (4000, 4000), 128).save(folder / "0.png")  # ~40 ms to decode, 30 KB
    for i in range(1, 400):
        os.link(folder / "0.png", folder / f"{i}.png")
    out = tmp_path / "out.csv"
    args = ["classify", str(folder), "-m", str(int8_model), "-o", str(out), "-t", "1"]

    def start(*more: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "edgefer", *args, "--workers", "1", "-b", "1", *more],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop_when(proc: subprocess.Popen, ready) -> str:
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 128 + 15, stderr
        assert "interrupted after" in stderr and "Traceback" not in stderr
        return stderr

    stop_when(start(), lambda: list(tmp_path.glob(".out.csv.*.tmp")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]
    # --append onto a CSV not there yet: it was written beside and renamed at the end, so an
    # interrupted run kept nothing, while it said "rows so far were appended".
    stderr = stop_when(start("--append"), lambda: out.exists() and out.stat().st_size > 200)
    assert "rows so far were appended" in stderr
    assert len(read_rows(out)) >= 1 and sorted(p.name for p in tmp_path.iterdir()) == [
        "big",
        "out.csv",
    ]


def test_an_interrupt_before_the_first_image_leaves_no_temp_csv(
    tmp_path, tiny_data, int8_model, monkeypatch
):
    # The CSV was opened before the run's interrupt handling began: a Ctrl-C while a large
    # tree was being sorted out left the hidden temp file.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("edgefer.cli.Summary", interrupted)
    result = run("classify", tiny_data, "-r", "-m", int8_model, "-o", tmp_path / "out.csv")
    assert result.exit_code == 130 and "no CSV written" in result.output
    assert list(tmp_path.iterdir()) == []


def test_dev_stdout_is_stdout(tmp_path, int8_model):
    # -o /dev/stdout was written as a file: beside it, then renamed over it, so `>> all.csv`
    # lost what all.csv held; and the summary went into the same stream as the rows.
    samples = Path(__file__).parent.parent / "samples"
    all_csv = tmp_path / "all.csv"
    all_csv.write_text("old,row\n")
    cmd = [sys.executable, "-m", "edgefer", "classify", str(samples), "-m", str(int8_model)]
    with open(all_csv, "a") as stdout:
        done = subprocess.run([*cmd, "-o", "/dev/stdout"], stdout=stdout, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    lines = all_csv.read_text().splitlines()
    assert lines[0] == "old,row" and lines[1].startswith("path,label") and len(lines) == 5
    assert b"3 classified" in done.stderr
    result = run("classify", samples, "-m", int8_model, "-o", f"{tmp_path}/new/")
    assert result.exit_code == EXIT_USAGE and "output directory does not exist" in result.output
    assert not (tmp_path / "new").exists()


def test_output_streams_and_write_errors(tmp_path, tiny_data, int8_model):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = run("classify", tiny_data, "-r", "-m", int8_model, "-o", fifo)
    reader.join(timeout=60)
    assert result.exit_code == EXIT_OK, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not replaced by a file
    assert len(received[0].splitlines()) == 61

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    out = tmp_path / "out.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", disk_full)
        full = run("classify", tiny_data, "-r", "-m", int8_model, "-o", out)
    assert full.exit_code == EXIT_USAGE and "No space left on device" in full.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.fifo"]  # no temp file left


def test_unlistable_subfolder_warns_and_exits_1(tmp_path, tiny_data, int8_model, monkeypatch):
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith(LABELS[0]):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "out.csv"
    result = run("classify", tiny_data, "-r", "-m", int8_model, "-o", out)
    assert result.exit_code == EXIT_FAILURES
    flat = " ".join(result.output.split())
    assert f"cannot list {tiny_data / LABELS[0]}: Permission denied" in flat
    n_left = 60 - len(list((tiny_data / LABELS[0]).iterdir()))
    assert "1 folder not listed" in flat and len(read_rows(out)) == n_left


def test_info_shows_the_whole_sha256_on_an_80_column_terminal(int8_model):
    result = runner.invoke(app, ["info", str(int8_model)], env={"COLUMNS": "80"})
    cells = [line.split("│") for line in result.output.splitlines() if line.count("│") == 3]
    start = next(i for i, c in enumerate(cells) if c[1].strip() == "sha256")
    value = cells[start][2].strip()
    for cell in cells[start + 1 :]:
        if cell[1].strip():
            break
        value += cell[2].strip()
    assert value == hashlib.sha256(int8_model.read_bytes()).hexdigest()


def test_max_pixels_can_be_raised_above_pillows_own_limit(tmp_path, int8_model):
    # A PNG whose header claims 20000x10000 px (200 MP): Pillow refused it at open whatever
    # --max-pixels said; now the option decides, and the data (cut short) is what fails.
    ihdr = struct.pack(">IIBBBBB", 20000, 10000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    png += struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IDAT" + b"\x00" * 8
    (tmp_path / "huge.png").write_bytes(png)
    out = tmp_path / "out.csv"
    run("classify", tmp_path / "huge.png", "-m", int8_model, "-o", out)
    assert "exceeds the 64,000,000 px limit" in read_rows(out)[0]["error"]
    run("classify", tmp_path / "huge.png", "-m", int8_model, "-o", out, "--max-pixels", 300e6)
    assert "limit" not in read_rows(out)[0]["error"] and read_rows(out)[0]["error"]


def test_labels_and_normalization_options_are_checked(tmp_path, int8_model):
    latin1 = tmp_path / "labels.txt"
    latin1.write_bytes(b"caf\xe9\n")
    result = run("info", int8_model, "--labels", latin1)
    assert result.exit_code == EXIT_USAGE and "not a UTF-8 text file of labels" in result.output
    result = run("info", int8_model, "--normalization", "0..2")
    assert result.exit_code == EXIT_USAGE and "--normalization must be one of" in result.output
    plain = tmp_path / "plain.txt"
    plain.write_text("a\nb\n")
    result = run("info", int8_model, "--labels", plain)  # the model's own labels win: say so
    assert result.exit_code == EXIT_OK and "--labels ignored" in result.output


def test_a_normalization_that_misses_a_bare_int8_models_input_range_is_warned_of(tmp_path):
    # A .tflite without a spec takes --normalization 0..1 unless told: for the shipped model's
    # int8 input, which takes 0..255, the pixels went into 2 of its 256 levels, and every
    # face came out "sad" without a word.
    from edgefer.shipped import default_model_path
    from edgefer.spec import flatbuffer

    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flatbuffer(default_model_path().read_bytes()))
    labels = tmp_path / "labels.txt"
    labels.write_text("angry\ndisgust\nfear\nhappy\nneutral\nsad\nsurprise\n")
    out = tmp_path / "x.csv"
    result = run("classify", SAMPLES, "-m", bare, "--labels", labels, "-o", out, "-q")
    flat = " ".join(result.output.split())
    assert result.exit_code == EXIT_OK
    assert "--normalization 0..1 gives the model 0..1, but its int8 input takes 0..255" in flat
    assert "try --normalization 0..255" in flat
    for norm in ("0..255", "-1..1"):  # what it takes; a model's own choice of range: no hint
        args = ("-m", bare, "--labels", labels, "--normalization", norm)
        result = run("classify", SAMPLES, *args, "-o", out, "-q")
        assert "warning" not in result.output if norm == "0..255" else "0..255" in result.output
    assert "warning" not in run("classify", SAMPLES, "-o", out, "-q").output  # a spec: none


def test_info_takes_the_model_as_classify_does(int8_model):
    by_option = run("info", "--model", int8_model)
    assert by_option.exit_code == EXIT_OK and str(int8_model.name) in by_option.output
    both = run("info", int8_model, "-m", int8_model)
    assert both.exit_code == EXIT_USAGE and "give the model once" in both.output


def test_shipped_models_are_chosen_by_name(tmp_path, monkeypatch):
    models = shipped_models_dir()
    robust = models / SHIPPED_MODELS["robust"]
    assert model_path("robust") == robust and model_path("default") == default_model_path()
    monkeypatch.setenv("EDGEFER_MODEL", "robust")
    assert default_model_path() == robust
    result = run("info")  # no --model: $EDGEFER_MODEL, itself a name
    assert result.exit_code == EXIT_OK and str(robust) in result.output
    monkeypatch.delenv("EDGEFER_MODEL")
    faces = write_dataset(tmp_path / "d", 2, seed=3)
    out = tmp_path / "out.csv"
    result = run("classify", faces, "-r", "-m", "robust", "-o", out)
    assert result.exit_code == EXIT_OK and f"model {robust.name}" in result.output
    assert len(read_rows(out)) == 6 and "fear" in out.read_text().splitlines()[0]
    # A file of that name in the working directory is a path first, as any argument is.
    monkeypatch.chdir(tmp_path)
    Path("robust").write_bytes(b"")
    assert model_path("robust") == Path("robust")
    assert "the file is empty" in run("info", "robust").output
    # ... but a folder of that name is not a model: a folder of images called "default" in the
    # working directory made every run without --model fail ("model path is a directory").
    Path("default").mkdir()
    assert model_path(None) == model_path("default") == models / DEFAULT_MODEL_NAME
    result = run("classify", "default", "-o", "-")
    assert result.exit_code == EXIT_OK, result.output


def test_an_unknown_model_name_lists_the_shipped_ones():
    result = run("info", "-m", "robustt")
    assert result.exit_code == EXIT_USAGE
    assert "model not found: robustt (a .tflite file, or one of: default, robust)" in result.output


def test_watch_poll_interval_needs_poll(tmp_path):
    result = run("watch", tmp_path, "-o", tmp_path / "out.csv", "--poll-interval", "5")
    assert result.exit_code == EXIT_USAGE and "--poll-interval is for --poll" in result.output


@pytest.mark.parametrize("out", ["-", "fifo"])
def test_watch_refuses_stdout_or_a_stream_as_its_csv(tmp_path, out):
    # `classify -o -` writes to stdout; `watch -o -` made a CSV named "-" (and "-.state") in the
    # current folder, and a FIFO stopped it with "cannot start: fifo: Invalid argument".
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    if out == "fifo":
        os.mkfifo(tmp_path / out)
    cmd = [sys.executable, "-m", "edgefer", "watch", str(inbox), "-o", out, "--settle", "0"]
    try:
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"watch -o {out} started watching")
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "a regular file" in done.stderr and "tail -F" in done.stderr
    made = ["inbox", "fifo"] if out == "fifo" else ["inbox"]  # no "-" nor "-.state"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(made)


def test_classify_time_gives_each_files_mtime_and_append_keeps_the_mode(tmp_path, int8_model):
    from edgefer.csvout import file_time

    folder = write_dataset(tmp_path / "data", 2, seed=3) / LABELS[0]
    images = sorted(folder.iterdir())
    for i, image in enumerate(images):
        os.utime(image, ns=(0, 1_796_025_909_000_000_000 + i * 86_400 * 10**9))
    out = tmp_path / "labels.csv"
    result = run("classify", images[0], "--time", "-m", int8_model, "-o", out)
    assert result.exit_code == EXIT_OK, result.output
    result = run("classify", folder, "--time", "--append", "-m", int8_model, "-o", out)
    assert result.exit_code == EXIT_OK, result.output
    rows = read_rows(out)
    assert list(rows[0])[:3] == ["path", "time", "label"]
    assert [r["time"] for r in rows] == [file_time(os.stat(p).st_mtime_ns) for p in images]
    assert rows[0]["time"] != rows[1]["time"]
    result = run("classify", folder, "--append", "-m", int8_model, "-o", out)
    assert result.exit_code == EXIT_USAGE and "with a time column (--time)" in result.output


def test_named_fifos_and_devices_are_read_without_hanging(tmp_path, int8_model):
    # A FIFO named on the command line with nobody writing to it hung the run until it was
    # killed; /dev/zero would never end. A pipe with a writer (`<(...)`, /dev/stdin) is read.
    samples = Path(__file__).parent.parent / "samples"
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "edgefer", "classify", "-m", str(int8_model), "-o", "-", "-q"]
    names = [str(fifo), "/dev/null", "/dev/zero", "/dev/stdin"]
    with open(samples / "collins.jpg", "rb") as stdin:
        done = subprocess.run([*cmd, *names], stdin=stdin, capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO(done.stdout.decode()))}
    assert rows[str(fifo)]["error"] == "empty: a FIFO with no writer"
    assert rows["/dev/null"]["error"] == "empty file"
    assert rows["/dev/zero"]["error"].startswith("more than 256 MiB")
    assert rows["/dev/stdin"]["label"] in LABELS and not rows["/dev/stdin"]["error"]
    # A pipe's name says nothing of what comes through it: --append does not skip it.
    out = tmp_path / "piped.csv"
    for _ in range(2):
        with open(samples / "collins.jpg", "rb") as stdin:
            argv = [*cmd[:-3], "-o", str(out), "--append", "/dev/stdin"]
            subprocess.run(argv, stdin=stdin, capture_output=True, check=True)
    assert [r["path"] for r in csv.DictReader(out.open())] == ["/dev/stdin", "/dev/stdin"]


def test_sighup_ends_the_run_like_ctrl_c_unless_ignored(tmp_path, int8_model):
    # Closing the SSH session or terminal sent SIGHUP: Python's default left the temp CSV.
    import signal

    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("L", (4000, 4000), 128).save(folder / "0.png")  # ~40 ms to decode
    for i in range(1, 400):
        os.link(folder / "0.png", folder / f"{i}.png")
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "edgefer", "classify", str(folder), "-m", str(int8_model)]
    cmd += ["-o", str(out), "-t", "1", "--workers", "1", "-b", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.csv.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]
    # Under nohup (SIGHUP ignored) the run goes on to the end.
    proc = subprocess.Popen(["nohup", *cmd], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    while not list(tmp_path.glob(".out.csv.*.tmp")) and time.monotonic() < deadline + 60:
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=120)
    assert proc.returncode == 0 and len(read_rows(out)) == 400


def test_an_output_folder_moved_or_removed_during_the_run_is_an_error_not_a_traceback(tmp_path):
    from edgefer.csvout import CsvError, CsvSink
    from edgefer.pipeline import Result

    for how in ("moved", "removed"):
        folder = tmp_path / how
        folder.mkdir()
        sink = CsvSink(str(folder / "v.csv"), ("a", "b"))
        sink.write(Result("x.png", "a", 0.9, (0.9, 0.1)))
        if how == "moved":
            folder.rename(tmp_path / "elsewhere")
        else:
            shutil.rmtree(folder)
        with pytest.raises(CsvError, match="its folder was moved or removed during the run"):
            sink.close()
    assert list((tmp_path / "elsewhere").iterdir()) == []  # the temp file did not stay behind


def test_appending_to_a_csv_deleted_during_the_run_is_an_error(tmp_path):
    # Exit 0 with a normal summary, and every row gone with the file.
    from edgefer.csvout import CsvError, CsvSink
    from edgefer.pipeline import Result

    out = tmp_path / "l.csv"
    for replace in (False, True):
        sink = CsvSink(str(out), ("a", "b"), append=True)
        sink.write(Result("x.png", "a", 0.9, (0.9, 0.1)))
        out.unlink()
        if replace:
            out.write_text("path\n")
        with pytest.raises(CsvError, match="deleted or replaced during the run"):
            sink.close()


def test_a_stdout_that_cannot_be_written_is_exit_2_not_a_traceback(tmp_path, int8_model):
    with open("/dev/full", "w") as full:
        for args in (["info", int8_model], ["classify", SAMPLES, "-o", tmp_path / "x.csv"]):
            done = subprocess.run(
                [sys.executable, "-m", "edgefer", *map(str, args)],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
            assert done.returncode == 2, done.stderr
            assert "cannot write standard output: No space left on device" in done.stderr
            assert "Traceback" not in done.stderr
    assert len(read_rows(tmp_path / "x.csv")) == 3  # the CSV itself was written


def test_batch_size_is_at_most_256(tmp_path, int8_model):
    # -b 4000 took 627 MB to classify three images; -b 100000 on val, 14 GB. (watch takes a
    # larger -b as 256: test_a_batch_size_over_the_cap_is_taken_as_the_cap_with_a_warning.)
    result = run("classify", SAMPLES, "-o", tmp_path / "x.csv", "-m", int8_model, "-b", "257")
    assert result.exit_code == EXIT_USAGE and "less than or equal to 256" in result.output


def test_the_threads_and_batch_size_options_reach_the_interpreter(tmp_path, interpreters):
    # Neither changes a row: dropped on the way to the classifier, -t left the interpreter on
    # every core (a Pi's other services starved) and -b ran one image per invoke.
    out = tmp_path / "x.csv"
    result = run("classify", SAMPLES / "hopper.jpg", "-o", out, "-t", "3", "-b", "3", "-q")
    assert result.exit_code == EXIT_OK, result.output
    (interpreter,) = interpreters
    assert interpreter.kwargs["num_threads"] == 3
    assert interpreter.get_input_details()[0]["shape"][0] == 3  # the batch it was sized for


def test_threads_that_cannot_start_are_a_usage_error(tmp_path, int8_model, monkeypatch):
    # Under `ulimit -v 200M` the decoding threads' stacks did not fit: a RuntimeError traceback.
    import edgefer.cli

    def no_threads(*args, **kwargs):
        raise RuntimeError("can't start new thread")
        yield

    monkeypatch.setattr(edgefer.cli, "classify_paths", no_threads)
    result = run("classify", SAMPLES, "-m", int8_model, "-o", tmp_path / "x.csv")
    assert result.exit_code == EXIT_USAGE
    assert "out of memory starting the decoding threads; try --workers 1" in result.output
    assert not list(tmp_path.iterdir())


def test_ctrl_c_before_a_command_handles_it_is_one_line(monkeypatch, capsys):
    import edgefer.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(edgefer.cli, "app", interrupted)
    with pytest.raises(SystemExit) as stop:
        edgefer.cli.main()
    assert stop.value.code == 130 and "error: interrupted" in capsys.readouterr().err


# A Ctrl-C while the command's modules are still loading (a second or more on a Pi), simulated by
# an import hook: `edgefer` and `python -m edgefer` end with one line and 130, no traceback.
_CTRL_C_WHILE_LOADING = """
import runpy, sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "edgefer.classifier":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = ["edgefer", "--help"]
if "{how}" == "module":
    runpy.run_module("edgefer", run_name="__main__")
else:
    from importlib.metadata import entry_points
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "edgefer"]
    script.load()()
"""


@pytest.mark.parametrize("how", ["script", "module"])
def test_ctrl_c_while_the_command_loads_is_one_line(how):
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_WHILE_LOADING.replace("{how}", how)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr, done.stdout) == (130, "error: interrupted\n", "")


def test_appending_from_another_folder_to_a_csv_of_relative_paths_warns(
    tmp_path, int8_model, monkeypatch
):
    # A cron job runs in /: the CSV's relative paths did not match, and every row came again.
    (tmp_path / "w").mkdir()
    shutil.copytree(SAMPLES, tmp_path / "w" / "photos")
    monkeypatch.chdir(tmp_path / "w")
    out = tmp_path / "w" / "labels.csv"
    assert run("classify", "photos", "-m", int8_model, "-o", "labels.csv", "-q").exit_code == 0
    result = run("classify", "photos", "-m", int8_model, "-o", out, "--append", "-q")
    assert "warning" not in result.output and len(read_rows(out)) == 3
    for image in (tmp_path / "w" / "photos").iterdir():  # files gone since: no false alarm
        image.rename(tmp_path / "w" / "photos" / f"new-{image.name}")
    result = run("classify", "photos", "-m", int8_model, "-o", out, "--append", "-q")
    assert "warning" not in result.output and len(read_rows(out)) == 6
    monkeypatch.chdir(tmp_path)
    result = run("classify", "w/photos", "-m", int8_model, "-o", out, "--append", "-q")
    flat = " ".join(result.output.split())
    assert "names files relative to another folder (photos/" in flat
    assert f"is not found from {tmp_path})" in flat


def test_appending_from_another_folder_to_a_csv_of_names_in_its_folder_warns(tmp_path, monkeypatch):
    # `edgefer classify . -o labels.csv` in the photos' folder writes ./x.jpg; a cron job in /
    # appending to it gave every photo a second row without a word: a name's folder is "."
    # wherever one runs, so the check that its folder exists always passed.
    photos = tmp_path / "photos"
    shutil.copytree(SAMPLES, photos)
    monkeypatch.chdir(photos)
    assert run("classify", ".", "-o", "labels.csv", "-q").exit_code == 0
    result = run("classify", ".", "-o", "labels.csv", "--append", "-q")
    assert "warning" not in result.output and len(read_rows(photos / "labels.csv")) == 3
    (photos / "hopper.jpg").unlink()  # a file gone since: no false alarm
    result = run("classify", ".", "-o", "labels.csv", "--append", "-q")
    assert "warning" not in result.output and len(read_rows(photos / "labels.csv")) == 3
    monkeypatch.chdir(tmp_path)
    result = run("classify", "photos", "-o", photos / "labels.csv", "--append", "-q")
    flat = " ".join(result.output.split())
    assert "names files relative to another folder (collins.jpg is not found from" in flat


def test_append_knows_the_files_of_a_folder_reached_through_a_symlink(tmp_path, monkeypatch):
    # ~/photos -> /media/usb/photos: a CSV written with `classify ~/photos`, appended to with
    # `cd ~/photos && classify . --append`, gave every file a second row: the current folder is
    # the link's target (os.getcwd), so ./x.jpg and ~/photos/x.jpg were two files.
    shutil.copytree(SAMPLES, tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    out = tmp_path / "labels.csv"
    assert run("classify", tmp_path / "link", "-o", out, "-q").exit_code == 0
    monkeypatch.chdir(tmp_path / "link")
    result = run("classify", ".", "-o", out, "--append")
    assert result.exit_code == 0 and "3 already in the CSV" in " ".join(result.output.split())
    assert len(read_rows(out)) == 3
    assert run("classify", tmp_path / "real", "-o", out, "--append", "-q").exit_code == 0
    assert len(read_rows(out)) == 3


def test_an_output_named_as_an_image_is_refused(tmp_path, monkeypatch):
    # `edgefer classify -o *.jpg`: the shell made the first photo the output, and the CSV
    # replaced it (exit 0; the photo was gone).
    for name in ("hopper.jpg", "collins.jpg"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "collins.jpg").read_bytes()
    result = run("classify", "-o", "collins.jpg", "hopper.jpg")
    assert result.exit_code == EXIT_USAGE
    assert "-o collins.jpg is an image's name" in " ".join(result.output.split())
    assert (tmp_path / "collins.jpg").read_bytes() == before
    assert run("classify", "hopper.jpg", "-o", "new.PNG").exit_code == EXIT_USAGE
    assert not (tmp_path / "new.PNG").exists()


def test_a_read_only_filesystem_is_named_as_such(tmp_path, monkeypatch):
    # The os.access check said "Permission denied" for a read-only mount, which sent users
    # chasing file modes.
    from types import SimpleNamespace

    from edgefer import csvout

    monkeypatch.setattr(csvout.os, "access", lambda *args: False)
    monkeypatch.setattr(csvout.os, "statvfs", lambda path: SimpleNamespace(f_flag=os.ST_RDONLY))
    with pytest.raises(csvout.CsvError, match="Read-only file system"):
        csvout.CsvSink(str(tmp_path / "x.csv"), ("a", "b"))


def test_the_first_signal_ignores_the_next_until_the_clean_up_is_done():
    # A second signal a few ms after the first cut the clean-up short: the temp CSV stayed, or
    # a traceback came from inside the handler (5 times in 200 double signals).
    import signal

    from edgefer import cli

    previous = cli._interrupt_on_signals()
    try:
        with pytest.raises(cli._Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_clean_up_cut_short_is_finished_by_the_next_close(tmp_path):
    from edgefer.csvout import CsvSink

    sink = CsvSink(str(tmp_path / "x.csv"), ("a", "b"))
    close = sink._stream.close

    def close_then_interrupted():
        close()
        raise KeyboardInterrupt

    sink._stream.close = close_then_interrupted
    with pytest.raises(KeyboardInterrupt), sink:
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir())  # the temp file, its removal cut short
    sink.close(commit=False)  # as the CLI's handler does
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_the_model_loads_says_so(tmp_path, monkeypatch):
    # Typer answers a KeyboardInterrupt in a command with a silent exit 130.
    import edgefer.cli

    def loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgefer.cli, "_load", loading)
    result = run("classify", SAMPLES, "-o", tmp_path / "x.csv")
    assert result.exit_code == 130
    assert "interrupted while loading the model; no CSV written" in result.output


def test_append_refuses_a_watch_daemons_csv_whose_next_start_would_cut_the_rows(tmp_path):
    # The daemon's state vouches only for its own rows: at its next start it cut the rows that
    # `classify --append` had added ("an unfinished batch"), and files outside its folder never
    # came back.
    from edgefer.ledger import Ledger

    out = tmp_path / "labels.csv"
    Ledger(out, ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")).close()
    before = out.read_bytes()
    result = run("classify", SAMPLES, "-o", out, "--append", "-q")
    assert result.exit_code == EXIT_USAGE, result.output
    assert "labels.csv.state" in result.output and "Traceback" not in result.output
    assert out.read_bytes() == before


def test_output_refuses_to_replace_a_watch_daemons_csv(tmp_path):
    # `classify DIR -o labels.csv` over the daemon's CSV replaced it: the daemon stopped (exit 1),
    # then refused the CSV at each restart (exit 2), so the service stayed down, its rows gone.
    from edgefer.ledger import Ledger

    out = tmp_path / "labels.csv"
    Ledger(out, ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")).close()
    before = out.read_bytes()
    result = run("classify", SAMPLES, "-o", out, "-q")
    assert result.exit_code == EXIT_USAGE, result.output
    assert "labels.csv.state" in result.output and "Traceback" not in result.output
    assert "stop the daemon and move both files away" in " ".join(result.output.split())
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "labels.csv.state"]
    # An ordinary CSV is still replaced, as before.
    other = tmp_path / "other.csv"
    other.write_text("old,row\n")
    assert run("classify", SAMPLES, "-o", other, "-q").exit_code == EXIT_OK
    assert read_rows(other)[0]["path"].startswith(str(SAMPLES))


def test_watch_help_names_the_model_among_its_exit_2_causes(tmp_path):
    # A missing or broken model is an exit 2 (systemd does not restart it), but the help's
    # exit-2 list named only the folder and the CSV.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    missing = tmp_path / "missing.tflite"
    result = run("watch", inbox, "-o", tmp_path / "labels.csv", "-m", missing)
    assert result.exit_code == EXIT_USAGE and "model not found" in result.output, result.output
    flat = " ".join(_help("watch", columns=300).split())
    exit_2 = flat.split("exit 2 for ")[1].split(".")[0]
    assert "a model that cannot be loaded" in exit_2, exit_2


def test_watch_refuses_an_image_named_csv(tmp_path):
    # `watch inbox -o inbox/labels.jpg` started: the daemon took its own CSV for an image that
    # did not decode, and tried it again every 60 s. Refused before the model loads.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    out = inbox / "labels.JPG"
    result = run("watch", inbox, "-o", out, "-m", tmp_path / "missing.tflite")
    assert result.exit_code == EXIT_USAGE, result.output
    flat = " ".join(result.output.split())
    assert "labels.JPG is an image's name" in flat and "model not found" not in flat, flat
    assert list(inbox.iterdir()) == []


def test_normalization_given_for_a_model_with_a_spec_is_warned_of_as_labels_is(int8_model):
    # The model's spec wins over --normalization, as over --labels; only --labels said so.
    result = run("info", int8_model, "--normalization", "-1..1")
    flat = " ".join(result.output.split())
    assert result.exit_code == EXIT_OK, result.output
    assert "--normalization ignored: the model carries its own input range (0..255)" in flat, flat
    assert "(pixel - [0.0]) / [1.0]" in flat  # what info shows is still the spec's
    assert "warning" not in run("info", int8_model).output  # not given: nothing to say

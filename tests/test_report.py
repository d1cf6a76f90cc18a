"""``edgefer summary``: CSVs read back into the classify summary, per period with a time column."""

from __future__ import annotations

import os

import pytest
from conftest import peak_memory
from typer.testing import CliRunner

from edgefer.cli import EXIT_OK, EXIT_USAGE, app
from edgefer.csvout import csv_header, csv_line, csv_row, path_key
from edgefer.ledger import Ledger
from edgefer.pipeline import Result
from edgefer.repeats import Repeats
from edgefer.report import NO_TIME, Layout, Report, period_of
from edgefer.rotation import Rotation

LABELS = ("happy", "sad", "-ve")  # "-ve" is written "'-ve", as a cell would be
runner = CliRunner()


def write_csv(path, rows, faces=False, time_column=False, torn=""):
    lines = [csv_line(csv_header(LABELS, faces, time_column))]
    lines += [csv_line(row) for row in rows]
    path.write_text("".join(lines) + torn)
    return path


def ok(label, p, when=None):
    probs = {"happy": [p, 1 - p, 0.0], "sad": [1 - p, p, 0.0], "-ve": [0.0, 1 - p, p]}[label]
    label_cell = "'-ve" if label == "-ve" else label
    time_cells = [] if when is None else [when]
    return ["x.jpg", *time_cells, label_cell, f"{p:.6f}", *(f"{q:.6f}" for q in probs), ""]


def failed(error, when=None):
    return ["y.jpg", *([] if when is None else [when]), "", "", "", "", "", error]


def table_lines(output):
    """The words of each output line, the tables' vertical rules left out."""
    return [[w for w in line.split() if w not in ("│", "┃")] for line in output.splitlines()]


def summary(*args, columns=80):
    return runner.invoke(app, ["summary", *map(str, args)], env={"COLUMNS": str(columns)})


@pytest.mark.parametrize("faces", [False, True])
@pytest.mark.parametrize("time_column", [False, True])
def test_the_layout_is_read_from_the_header(faces, time_column):
    layout = Layout.of(csv_header(LABELS, faces, time_column))
    assert layout == Layout(LABELS, faces, time_column)


@pytest.mark.parametrize(
    "header",
    [
        ["path", "label", "confidence", "error"],  # no label column
        ["path", "time", "label", "confidence", "happy"],  # no error column
        ["name", "label", "confidence", "happy", "error"],
        ["path", "face", "label", "confidence", "happy", "error"],  # part of the face columns
        ["path", "label", "confidence", "-ve", "error"],  # a label cell not neutralised
    ],
)
def test_other_headers_are_not_edgefer_csvs(header):
    assert Layout.of(header) is None


@pytest.mark.parametrize(
    ("by", "key"),
    [("hour", "2026-11-30T08"), ("day", "2026-11-30"), ("week", "2026-W49"), ("month", "2026-11")],
)
def test_periods_of_a_time_cell(by, key):
    assert period_of("2026-11-30T08:05:09+01:00", by) == key  # a Monday: ISO week 49
    assert period_of("", by) == NO_TIME
    assert period_of("yesterday", by) == NO_TIME
    # As a spreadsheet saves it (a space, not T): it was "no time" per hour but had a day.
    assert period_of("2026-11-30 08:05:09+01:00", by) == key
    assert period_of("2026-11-30Tgarbage", by) == NO_TIME  # was given a day


def test_iso_weeks_cross_the_year():
    assert period_of("2027-01-01T12:00:00+00:00", "week") == "2026-W53"
    assert period_of("2026-12-31T12:00:00+00:00", "month") == "2026-12"


def test_summary_per_day_of_a_csv_being_written(tmp_path):
    rows = [
        ok("happy", 0.9, "2026-11-30T08:05:09+01:00"),
        ok("sad", 0.4, "2026-11-30T23:59:59+01:00"),
        failed("truncated or corrupt image", "2026-11-30T10:00:00+01:00"),
        ok("-ve", 0.8, "2026-12-01T00:00:00+01:00"),
        ok("happy", 0.7, ""),  # a file whose time could not be read
    ]
    path = write_csv(tmp_path / "labels.csv", rows, time_column=True, torn="x.jpg,2026-12-0")
    result = summary(path, "--by", "day")
    assert result.exit_code == EXIT_OK, result.output
    lines = table_lines(result.output)
    assert ["happy", "2", "50.0%", "0.800"] in lines
    assert ["-ve", "1", "25.0%", "0.800"] in lines
    assert ["truncated", "or", "corrupt", "image", "1", "y.jpg"] in lines
    assert "4 classified, 1 failed, 1 below 0.50 confidence" in result.output
    assert "images/s" not in result.output  # not a run: no rate
    assert ["day", "happy", "sad", "-ve", "failed"] in lines
    assert ["2026-11-30", "1", "1", "0", "1"] in lines
    assert ["2026-12-01", "0", "0", "1", "0"] in lines
    assert [NO_TIME.split()[0], NO_TIME.split()[1], "1", "0", "0", "0"] in lines
    assert "1 CSV, images saved from 2026-11-30T08:05:09+01:00 to 2026-12-01T00:00:00+01:00" in (
        result.output
    )
    assert "1 incomplete row left out" in result.output
    assert "…" not in result.output  # 80 columns: nothing cut


def test_first_and_last_are_instants_not_strings(tmp_path):
    # The night clocks go back in Berlin: 02:30 summer time comes before 02:10 winter time.
    rows = [
        ok("happy", 0.9, "2026-10-25T02:10:00+01:00"),
        ok("sad", 0.9, "2026-10-25T02:30:00+02:00"),
        ok("sad", 0.9, "yesterday"),  # not a time: neither first nor last
    ]
    path = write_csv(tmp_path / "labels.csv", rows, time_column=True)
    result = summary(path, columns=120)
    assert result.exit_code == EXIT_OK, result.output
    assert "from 2026-10-25T02:30:00+02:00 to 2026-10-25T02:10:00+01:00" in result.output
    only_bad = write_csv(tmp_path / "bad.csv", rows[2:], time_column=True)
    result = summary(only_bad, "--by", "day")
    assert result.exit_code == EXIT_OK and NO_TIME in result.output


def test_rows_being_written_duplicates_and_damage(tmp_path):
    """Found by an audit of summary on a daemon's CSVs: each of these failed the whole summary
    or counted what it should not."""
    rows = [ok("happy", 0.9), ok("sad", 0.8)]
    # A last row torn inside a character (é cut after its first byte): "not a CSV" before.
    torn = write_csv(tmp_path / "torn.csv", rows)
    with open(torn, "ab") as f:
        f.write(b"/tmp/caf\xc3")
    # A last error row torn inside its message: counted as a failure "truncated or co".
    cut = write_csv(tmp_path / "cut.csv", rows, torn="y.jpg,,,,,,truncated or co")
    # A whole last row whose line end an editor dropped is a row.
    whole = write_csv(tmp_path / "whole.csv", rows, torn=csv_line(ok("sad", 0.7)).rstrip("\n"))
    for path, classified in ((torn, 2), (cut, 2), (whole, 3)):
        result = summary(path)
        assert result.exit_code == EXIT_OK, result.output
        assert f"{classified} classified, 0 failed" in result.output, (path, result.output)
        assert ("1 incomplete row left out" in result.output) == (classified == 2)
    # The same file twice (`summary labels.csv labels*.csv`) was counted twice.
    result = summary(whole, whole, tmp_path / "." / "whole.csv")
    assert "3 classified" in result.output and "1 CSV" in result.output
    # A label that is not one of the header's was counted but in no label's row.
    odd, nan = ok("happy", 0.9), ok("sad", 0.9)
    odd[1], nan[2] = "contempt", "nan"
    result = summary(write_csv(tmp_path / "odd.csv", [*rows, odd, nan]))
    assert "2 classified" in result.output and "2 incomplete rows" in result.output
    # A timed CSV with no rows yet (just rotated) has an empty table, not "write with --time".
    empty = write_csv(tmp_path / "empty.csv", [], time_column=True)
    result = summary(empty, "--by", "day")
    assert result.exit_code == EXIT_OK, result.output


def test_rotated_csvs_are_read_together_and_hours_fit_80_columns(tmp_path):
    old = write_csv(tmp_path / "labels.2026-11.csv", [ok("happy", 0.9)])  # before --time
    new = write_csv(
        tmp_path / "labels.csv", [ok("sad", 0.9, "2026-12-01T09:00:00+00:00")], time_column=True
    )
    result = summary(old, new, "--by", "hour")
    assert result.exit_code == EXIT_OK, result.output
    assert "2 classified, 0 failed" in result.output and "2 CSVs" in result.output
    lines = table_lines(result.output)
    assert ["2026-12-01T09", "0", "1", "0", "0"] in lines
    assert "…" not in result.output


def test_faces_csvs_count_images_and_faces(tmp_path):
    def face(n, label):
        row = ok(label, 0.9)
        return [row[0], str(n), "1", "2", "30", "30", "0.9000", *row[1:]]

    no_face = ["z.jpg", "", "", "", "", "", "", "", "", "", "", "", "no face"]
    path = write_csv(tmp_path / "faces.csv", [face(1, "happy"), face(2, "sad"), no_face], True)
    result = summary(path)
    assert result.exit_code == EXIT_OK, result.output
    assert "2 images, 2 faces, 1 image without a face, 0 failed" in result.output
    # An image that could not be read is one of the images (it was left out of the count).
    broken = ["b.jpg", "", "", "", "", "", "", "", "", "", "", "", "empty file"]
    path = write_csv(tmp_path / "more.csv", [face(1, "happy"), broken, no_face], True)
    result = summary(path)
    assert "3 images, 1 face, 1 image without a face, 1 failed" in result.output


def test_images_without_a_face_are_not_failures_of_their_period(tmp_path):
    # A photo without a face is a read image (exit 0, "images without a face" in the totals):
    # counted in its day's "failed" column, the table gave a failure the totals did not.
    when = "2026-11-30T08:05:09+01:00"
    face = ["x.jpg", when, "1", "1", "2", "30", "30", "0.9000", *ok("happy", 0.9)[1:]]
    no_face = ["z.jpg", when, *[""] * 11, "no face"]
    broken = ["b.jpg", when, *[""] * 11, "empty file"]
    path = write_csv(tmp_path / "faces.csv", [face, no_face, broken], True, True)
    result = summary(path, "--by", "day")
    assert result.exit_code == EXIT_OK, result.output
    assert "3 images, 1 face, 1 image without a face, 1 failed" in result.output
    assert ["2026-11-30", "1", "0", "0", "1"] in table_lines(result.output)


def test_a_confidence_at_the_threshold_is_not_below_it(tmp_path):
    # --low-confidence counts predictions *below* it (its help, and the total's "below 0.50
    # confidence"): one at exactly the threshold is not counted, in classify's summary as here.
    rows = [ok("happy", 0.5), ok("sad", 0.499999), ok("-ve", 0.500001), ok("sad", 0.75)]
    path = write_csv(tmp_path / "labels.csv", rows)
    result = summary(path)
    assert "4 classified, 0 failed, 1 below 0.50 confidence" in result.output, result.output
    result = summary(path, "--low-confidence", "0.75")
    assert "4 classified, 0 failed, 3 below 0.75 confidence" in result.output, result.output


def test_refusals_exit_2(tmp_path):
    plain = write_csv(tmp_path / "a.csv", [ok("happy", 0.9)])
    faces = write_csv(tmp_path / "f.csv", [], faces=True)
    other = tmp_path / "o.csv"
    other.write_text(csv_line(csv_header(("x", "y"))))
    text = tmp_path / "notes.csv"
    text.write_text("hello,world\n")
    cases = [
        ((plain, faces), "f.csv was written with face detection (--faces), unlike "),
        ((plain, other), "o.csv is for other labels (x, y) than "),
        ((text,), "notes.csv is not a CSV written by edgefer"),
        ((tmp_path / "gone.csv",), "cannot read"),
        ((plain, "--by", "day"), "no CSV has a time column (write the CSV with --time)"),
        ((plain, "--by", "year"), "expected one of hour, day, week, month"),
    ]
    for args, message in cases:
        result = summary(*args, columns=400)
        assert result.exit_code == EXIT_USAGE, (args, result.output)
        assert message in result.output, (args, result.output)


def test_seven_labels_per_hour_fit_80_columns(tmp_path):
    fer = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    row = ["x.jpg", "2026-12-01T09:00:00+00:00", "surprise", "0.900000", *["0.1"] * 7, ""]
    path = tmp_path / "fer.csv"
    path.write_text(csv_line(csv_header(fer, time_column=True)) + csv_line(row))
    result = summary(path, "--by", "hour")
    assert result.exit_code == EXIT_OK, result.output
    assert ["hour", *fer, "failed"] in table_lines(result.output)
    assert "…" not in result.output


def test_a_csv_piped_in_as_dash(tmp_path):
    # `summary -` was taken for a file named "-" ("No such file").
    import os
    import subprocess
    import sys

    path = write_csv(tmp_path / "a.csv", [ok("happy", 0.9), ok("sad", 0.8)])
    done = subprocess.run(
        [sys.executable, "-m", "edgefer", "summary", "-"],
        input=path.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert b"2 classified, 0 failed" in done.stdout
    # In messages it is standard input, not /dev/stdin.
    rows = [named("a.jpg", ok("happy", 0.9)), named("b.jpg", ok("sad", 0.8))]
    path = write_csv(tmp_path / "a.csv", rows)
    done = subprocess.run(
        [sys.executable, "-m", "edgefer", "summary", "-", "a.csv"],
        input=path.read_bytes(),
        capture_output=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert b"4 classified, 0 failed" in done.stdout
    assert b"2 paths are in more than one CSV (standard input, a.csv)" in done.stderr


def test_a_large_csv_is_read_in_little_memory(tmp_path):
    # The whole file was read into memory, and copied: a daemon's CSV of a million rows took
    # 200 MB and more to summarise on a Pi.
    path = tmp_path / "labels.csv"
    row = csv_line(ok("happy", 0.75, "2026-12-03T07:00:00+00:00")).encode()
    header = csv_line(csv_header(LABELS, time_column=True)).encode()
    path.write_bytes(header + row * 30_000 + row[:20])  # 2.4 MB, a row still being written
    report = Report(by="day")
    _, peak = peak_memory(lambda: report.read(path))
    assert report.summary.per_label["happy"] == 30_000 and report.incomplete == 1
    assert report.per_period["2026-12-03"]["happy"] == 30_000
    assert peak < 600_000, peak


def named(path, row):
    return [path, *row[1:]]


def test_one_folder_classified_by_both_models_is_a_warning(tmp_path, monkeypatch):
    # `classify photos -o default.csv`, `classify photos -m robust -o robust.csv`, then
    # `summary default.csv robust.csv`: same labels, no model column, every image counted twice
    # without a word. The paths as either run may have spelled them: relative, ./, absolute.
    monkeypatch.chdir(tmp_path)
    photos = ["photos/a.jpg", "photos/b.jpg", "photos/c.jpg"]
    default = write_csv(tmp_path / "default.csv", [named(p, ok("happy", 0.9)) for p in photos])
    spelled = ["./photos/a.jpg", str(tmp_path / "photos" / "b.jpg"), "photos/c.jpg"]
    robust = write_csv(tmp_path / "robust.csv", [named(p, ok("sad", 0.8)) for p in spelled])
    other = write_csv(tmp_path / "other.csv", [named("elsewhere/d.jpg", ok("happy", 0.9))])
    result = summary(default, other, robust, columns=400)
    assert result.exit_code == EXIT_OK, result.output
    assert "7 classified, 0 failed" in result.output  # every row, as documented
    assert (
        "warning: 3 paths are in more than one CSV (default.csv, robust.csv), and counted in"
        " each; a relative path is read from the current folder"
    ) in result.output.replace(str(tmp_path) + "/", "")
    assert "If these CSVs are one folder classified by two models" in result.output
    assert "classified again" not in result.output
    # A CSV and its rotated one hold different files: no warning.
    result = summary(default, other)
    assert result.exit_code == EXIT_OK and "warning" not in result.output, result.output


def test_a_file_classified_again_in_one_csv_is_a_note_not_a_warning(tmp_path):
    # A watch daemon writes a second row for a file put back or replaced: a row to count.
    watched = str(tmp_path / "inbox" / "a.jpg")
    rows = [named(watched, ok("happy", 0.9)), named(str(tmp_path / "b.jpg"), ok("sad", 0.9))]
    rows += [named(watched, ok("sad", 0.7)), named(watched, failed("empty file"))]
    path = write_csv(tmp_path / "labels.csv", rows)
    result = summary(path, columns=400)
    assert result.exit_code == EXIT_OK, result.output
    assert "3 classified, 1 failed" in result.output
    assert "; 1 image classified again in the same CSV, each time counted" in result.output
    assert "warning" not in result.output


def test_images_in_several_csvs_are_counted_once_each(tmp_path):
    # Past a few thousand rows the hashes are sorted in chunks: a path again after that, in a
    # CSV or across CSVs, is found all the same; an image in three CSVs is one image.
    many = [f"/in/{i}.jpg" for i in range(20_000)]
    report = Report()
    for name, paths in (("a", many), ("b", [*many[:5], many[-1], "/in/new.jpg"]), ("c", many[:2])):
        text = csv_line(csv_header(LABELS))
        text += "".join(csv_line(named(p, ok("happy", 0.9))) for p in paths)
        (tmp_path / f"{name}.csv").write_text(text + csv_line(named(paths[-1], ok("sad", 0.6))))
        report.read(tmp_path / f"{name}.csv", name)
    assert report.repeats.within == 3  # each CSV's last path has two rows in it
    assert report.in_several() == (6, ["a", "b", "c"])
    assert report.summary.n_ok == 20_001 + 8 + 3


def test_faces_of_one_image_are_one_image(tmp_path):
    def face(path, n):
        return [path, str(n), "1", "2", "30", "30", "0.9000", *ok("happy", 0.9)[1:]]

    rows = [face("x.jpg", 1), face("x.jpg", 2), ["z.jpg", *[""] * 11, "no face"]]
    first = write_csv(tmp_path / "a.csv", rows, faces=True)
    second = write_csv(tmp_path / "b.csv", rows[:2], faces=True)
    report = Report()
    report.read(first)
    assert report.repeats.within == 0 and report.in_several()[0] == 0
    report.read(second)
    assert report.in_several() == (1, [str(first), str(second)])


def test_images_in_several_csvs_are_found_in_little_memory(tmp_path):
    # A set of the paths took 126 bytes a path: 126 MB for a daemon's million rows.
    header = csv_line(csv_header(LABELS)).encode()
    row = csv_line(named("/srv/faces/inbox/IMG_{:08d}.jpg", ok("happy", 0.75))).encode()
    rows = b"".join(row.replace(b"{:08d}", b"%08d" % i) for i in range(30_000))
    (tmp_path / "a.csv").write_bytes(header + rows)
    (tmp_path / "b.csv").write_bytes(header + rows)
    report = Report()

    def read_both():
        report.read(tmp_path / "a.csv")
        report.read(tmp_path / "b.csv")
        return report.in_several()

    (images, _), peak = peak_memory(read_both)
    assert images == 30_000
    assert peak < 2_000_000, peak  # measured 1.47 MB; a set of the paths alone: 3.8 MB


@pytest.mark.parametrize("rotate", ["monthly", "weekly", "daily", "1"])
def test_a_file_a_daemon_classified_again_after_a_rotation_is_a_note(
    rotate, local_zone, tmp_path, monkeypatch
):
    # `watch --rotate monthly` put labels.csv aside as labels.2026-11.csv; a file replaced in
    # December has a row in each: a row to count, as in one CSV, not two models' CSVs.
    local_zone("UTC")
    photo = tmp_path / "inbox" / "a.jpg"
    photo.parent.mkdir()
    clock = [1_796_032_800.0]  # 2026-11-30 10:00 UTC
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: clock[0])
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS, rotation=Rotation.parse(rotate), time_column=True)
    for label, version in (("happy", 1), ("sad", 2), ("sad", 3)):
        photo.write_bytes(b"x" * version)  # a new version, classified again
        os.utime(photo, (clock[0], clock[0]))
        st = os.stat(photo)
        probabilities = (0.9, 0.1, 0.0) if label == "happy" else (0.1, 0.9, 0.0)
        result = Result(str(photo), label, 0.9, probabilities)
        ledger.append([(result, (st.st_size, st.st_mtime_ns))])
        clock[0] += 40 * 86400  # the next batch in another period
    ledger.close()
    rotated = Rotation.archives(out)
    assert len(rotated) == 2
    result = summary(*rotated, out, columns=400)
    assert result.exit_code == EXIT_OK, result.output
    assert "3 classified, 0 failed" in result.output and "warning" not in result.output
    assert "; 1 image classified again in the same CSV or one rotated out of it" in result.output
    # Another model's CSV of the same folder is still a warning, naming the CSVs it shares.
    robust = write_csv(tmp_path / "robust.csv", [named(str(photo), ok("happy", 0.8))])
    result = summary(*rotated, out, robust, columns=400)
    assert "warning: 1 image is in more than one CSV" in result.output
    assert str(robust) in result.output and str(out) in result.output
    # So is a copy of the daemon's CSV in another folder: not a CSV the daemon put aside.
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / rotated[0].name
    copy.write_bytes(rotated[0].read_bytes())
    result = summary(*rotated, out, copy, columns=400)
    assert "warning: 1 image is in more than one CSV" in result.output


def test_an_image_in_csvs_of_one_set_is_classified_again_once():
    # Twice in one CSV of a set and in another one too: one image classified again.
    repeats = Repeats()
    for paths, of_set in ((["/a", "/a", "/b"], "s"), (["/a", "/c"], "s"), (["/c"], None)):
        for path in paths:
            repeats.add(path)
        repeats.end_csv(of_set)
    assert repeats.within == 1
    assert repeats.across() == (1, [1, 2])  # /c: in the set's second CSV and in the third
    assert repeats.sets_of_several()


@pytest.mark.parametrize(
    "name",
    ["photos/", "/srv/in/x.jpg/", "", ".", "./x.jpg", "a//b/../x.jpg", "//x.jpg", "///x.jpg"]
    + ["=x.jpg", "'=x.jpg", "'x.jpg", "-x/./y.jpg", "/.x.jpg", "x.jpg/.", "\udce4.jpg"],
)
def test_summary_tells_images_apart_as_append_does(tmp_path, monkeypatch, name):
    # The path of a cell, as `classify --append` reads it (csvout.path_key), is the image
    # `summary` takes it for: a name and its absolute path are one image.
    monkeypatch.chdir(tmp_path)
    cell = csv_row(Result(name, "happy", 0.9, (0.9, 0.1, 0.0)), len(LABELS))[0]
    spelled = write_csv(tmp_path / "spelled.csv", [named(cell, ok("happy", 0.9))])
    key = write_csv(tmp_path / "key.csv", [named(path_key(cell), ok("happy", 0.9))])
    report = Report()
    report.read(spelled)
    report.read(key)
    assert report.in_several() == (1, [str(spelled), str(key)])


def test_a_relative_path_in_csvs_written_in_two_folders_is_not_said_to_be_one_image(
    tmp_path, monkeypatch
):
    # `classify photos -o a.csv` in ~/a and in ~/b: both CSVs hold photos/x.jpg, two images, and
    # nothing in a CSV says where it was written. The warning said they were one image.
    monkeypatch.chdir(tmp_path)
    rows = [named("photos/x.jpg", ok("happy", 0.9))]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_csv(tmp_path / folder / f"{folder}.csv", rows)
    result = summary("a/a.csv", "b/b.csv", columns=400)
    assert result.exit_code == EXIT_OK, result.output
    assert "image is in more than one CSV" not in result.output
    assert (
        "warning: 1 path is in more than one CSV (a/a.csv, b/b.csv), and counted in each; a "
        "relative path is read from the current folder, as a CSV does not say where it was "
        "written: the same relative path written in two folders is two images. If these CSVs"
    ) in result.output
    # Absolute paths name images: the warning says so, without the caveat.
    write_csv(tmp_path / "a" / "a.csv", [named(str(tmp_path / "x.jpg"), ok("happy", 0.9))])
    write_csv(tmp_path / "b" / "b.csv", [named(str(tmp_path / "x.jpg"), ok("sad", 0.9))])
    result = summary("a/a.csv", "b/b.csv", columns=400)
    assert "warning: 1 image is in more than one CSV (a/a.csv, b/b.csv)" in result.output
    assert "relative" not in result.output

import codecs
import csv
import io
import os
import re

import pytest

from edgefer.csvout import (
    Cells,
    CsvError,
    CsvSink,
    Layout,
    absolute_paths,
    as_utf8,
    csv_header,
    csv_row,
    file_time,
    neutralize,
    read_existing,
    unneutralize,
)
from edgefer.pipeline import Result

LABELS = ("happy", "sad")
OK = Result("a.jpg", "happy", 0.75, (0.75, 0.25))
BAD = Result("b.jpg", error="empty file")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_columns_and_rows(tmp_path):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(OK)
        sink.write(BAD)
    assert rows(out) == [
        ["path", "label", "confidence", "happy", "sad", "error"],
        ["a.jpg", "happy", "0.750000", "0.750000", "0.250000", ""],
        ["b.jpg", "", "", "", "", "empty file"],
    ]


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formulas_are_neutralised(cell):
    assert neutralize(cell) == "'" + cell
    assert neutralize("photo.jpg") == "photo.jpg"


@pytest.mark.parametrize("cell", ["=x.jpg", "'=x.jpg", "''=x.jpg", "'x.jpg", "x.jpg", "'", ""])
def test_neutralising_round_trips_and_keeps_cells_apart(cell):
    # `'=x.jpg` was written as it is and read back as `=x.jpg`, so the two names collided.
    assert unneutralize(neutralize(cell)) == cell
    if cell.lstrip("'").startswith("="):
        assert neutralize(cell) == "'" + cell


def test_append_tells_a_quoted_name_from_a_formula_name(tmp_path):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(Result("'=x.jpg", error="empty file"))
    with CsvSink(str(out), LABELS, append=True) as sink:
        assert sink.seen("'=x.jpg") and not sink.seen("=x.jpg")
        sink.write(Result("=x.jpg", error="empty file"))
    with CsvSink(str(out), LABELS, append=True) as sink:
        assert sink.seen("=x.jpg")
    assert [r[0] for r in rows(out)[1:]] == ["''=x.jpg", "'=x.jpg"]


def test_neutralised_in_the_file(tmp_path):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(Result("=HYPERLINK(1).jpg", error="-bad"))
    assert rows(out)[1][0] == "'=HYPERLINK(1).jpg" and rows(out)[1][-1] == "'-bad"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    with pytest.raises(RuntimeError), CsvSink(str(out), LABELS) as sink:
        sink.write(OK)
        raise RuntimeError("crash mid-run")
    assert out.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["out.csv"]  # no temp file left behind


def test_file_appears_only_complete_with_normal_mode(tmp_path):
    out = tmp_path / "out.csv"
    sink = CsvSink(str(out), LABELS)
    sink.write(OK)
    assert not out.exists()  # still a hidden temp file
    sink.close()
    assert len(rows(out)) == 2
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)


def test_append_skips_known_paths_and_keeps_one_header(tmp_path):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(OK)
    with CsvSink(str(out), LABELS, append=True) as sink:
        assert sink.seen("a.jpg") and not sink.seen("b.jpg")
        sink.write(BAD)
    assert [r[0] for r in rows(out)] == ["path", "a.jpg", "b.jpg"]


def test_append_to_a_file_of_only_a_byte_order_mark_writes_the_header(tmp_path):
    # An "empty" CSV saved by Notepad or PowerShell as UTF-8 is its BOM alone: rows were
    # appended without a header, and the CSV was then refused by summary and --append.
    out = tmp_path / "out.csv"
    out.write_bytes(codecs.BOM_UTF8)
    with CsvSink(str(out), LABELS, append=True) as sink:
        sink.write(OK)
    with open(out, newline="", encoding="utf-8-sig") as f:
        assert [r[0] for r in csv.reader(f)] == ["path", "a.jpg"]
    with CsvSink(str(out), LABELS, append=True) as sink:
        assert sink.seen("a.jpg")


def test_append_refuses_other_labels(tmp_path):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(OK)
    with pytest.raises(CsvError, match="other labels"):
        CsvSink(str(out), ("angry", "calm"), append=True)
    # A CSV of something else is left as it is, and said to be that, not "other labels".
    other = tmp_path / "inventory.csv"
    other.write_text("item,count\nbolts,12\n")
    with pytest.raises(CsvError, match="inventory.csv is not a CSV written by edgefer"):
        CsvSink(str(other), LABELS, append=True)
    assert other.read_text() == "item,count\nbolts,12\n"
    # The labels are named as the model has them, not as the header escapes them.
    neg = tmp_path / "neg.csv"
    with CsvSink(str(neg), ("-ve", "+ve")):
        pass
    with pytest.raises(CsvError, match=r"other labels \(-ve, \+ve\)"):
        CsvSink(str(neg), LABELS, append=True)


def test_torn_last_line_is_repaired(tmp_path):
    out = tmp_path / "out.csv"
    header = ",".join(csv_header(LABELS)) + "\n"
    out.write_text(header + "a.jpg,happy,0.7,0.7,0.3,\nb.jpg,sa")
    assert read_existing(out, LABELS) == {"a.jpg"}
    assert out.read_text().endswith("0.3,\n")
    # A name with a newline in it: the torn record is cut where it starts, not at its newline.
    out.write_text(header + 'a.jpg,happy,0.7,0.7,0.3,\n"b\nc.jpg",happy,0.7,0')
    assert read_existing(out, LABELS) == {"a.jpg"}
    assert out.read_text() == header + "a.jpg,happy,0.7,0.7,0.3,\n"
    # An error row may be torn in its message: cut, so that its file is tried again.
    out.write_text(header + "a.jpg,,,,,truncated or cor")
    assert read_existing(out, LABELS) == set() and out.read_text() == header
    # Torn inside a character (a full disk): cut, not refused as "not UTF-8".
    out.write_bytes((header + "a.jpg,happy,0.7,0.7,0.3,\n").encode() + "café".encode()[:-1])
    assert read_existing(out, LABELS) == {"a.jpg"}
    assert out.read_text() == header + "a.jpg,happy,0.7,0.7,0.3,\n"


def test_a_whole_last_row_without_its_newline_is_kept(tmp_path):
    # Some editors and exports save the last line without a newline: --append dropped that row.
    out = tmp_path / "out.csv"
    body = ",".join(csv_header(LABELS)) + "\r\na.jpg,happy,0.7,0.7,0.3,\r\nb.jpg,sad,0.6,0.4,0.6,"
    out.write_bytes(codecs.BOM_UTF8 + body.encode())
    with CsvSink(str(out), LABELS, append=True) as sink:
        assert sink.seen("a.jpg") and sink.seen("b.jpg")
        sink.write(OK)
    assert [r[0] for r in rows(out)[1:]] == ["a.jpg", "b.jpg", "a.jpg"]
    # Nothing is changed before the whole file has been read: a byte that is not UTF-8 far
    # from the end is refused before the last line is looked at.
    lines = [",".join(csv_header(LABELS))] + [f"{i}.jpg,happy,0.7,0.7,0.3," for i in range(3000)]
    lines[1000] = "caf\xe9.jpg,happy,0.7,0.7,0.3,"
    raw = "\n".join(lines).encode("latin-1")[:-4]  # and a torn last line
    out.write_bytes(raw)
    with pytest.raises(CsvError, match="is not a CSV written by edgefer"):
        CsvSink(str(out), LABELS, append=True)
    assert out.read_bytes() == raw


def test_stdout(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    with CsvSink("-", LABELS) as sink:
        sink.write(OK)
    assert buf.getvalue().splitlines()[1].startswith("a.jpg,happy")


def test_missing_output_directory(tmp_path):
    with pytest.raises(CsvError, match="does not exist"):
        CsvSink(str(tmp_path / "no" / "out.csv"), LABELS)


def test_output_that_is_a_directory_is_refused_before_the_run(tmp_path):
    # It used to fail only at the final rename, after the whole run, leaving the temp file
    # beside the directory.
    for append in (False, True):
        with pytest.raises(CsvError, match="is a directory"):
            CsvSink(str(tmp_path), LABELS, append=append)
    assert list(tmp_path.parent.glob(f".{tmp_path.name}.*")) == []


def test_a_failed_final_rename_is_a_csv_error_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "out.csv"
    sink = CsvSink(str(out), LABELS)
    sink.write(OK)
    out.mkdir()  # something takes the name while the run goes on
    (out / "keep").write_text("x")
    with pytest.raises(CsvError, match="cannot write"):
        sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


LATIN1 = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 file name, as Python lists it on Linux


def test_non_utf8_file_names_are_written_as_their_bytes(tmp_path):
    assert as_utf8(LATIN1) == "caf\\xe9.jpg"
    assert as_utf8("ok/é.jpg") == "ok/é.jpg"
    assert as_utf8("\ud800") == "\\ud800"  # a surrogate no file name decodes to
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(Result(LATIN1, "happy", 0.75, (0.75, 0.25)))
        sink.write(Result("b" + LATIN1, error=f"cannot read {LATIN1}"))
    assert [r[0] for r in rows(out)[1:]] == ["caf\\xe9.jpg", "bcaf\\xe9.jpg"]
    assert rows(out)[2][-1] == "cannot read caf\\xe9.jpg"
    sink = CsvSink(str(out), LABELS, append=True)
    assert sink.seen(LATIN1) and not sink.seen("caf.jpg")
    sink.close()


def test_append_refuses_a_file_that_is_not_its_csv_without_touching_it(tmp_path):
    # The torn-line repair used to run first: it cut the last line off a user's file (or all of
    # a one-line file) before the header check refused it.
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes line 1\nimportant last line without newline")
    single = tmp_path / "one.txt"
    single.write_text("single line no newline")
    other = tmp_path / "other.csv"
    other.write_text(",".join(csv_header(("angry", "calm"))) + "\na.jpg,angry,0.9,0.9,0.1,")
    for path in (notes, single, other):
        before = path.read_bytes()
        with pytest.raises(CsvError):
            CsvSink(str(path), LABELS, append=True)
        assert path.read_bytes() == before


def test_append_reads_what_spreadsheets_save(tmp_path):
    out = tmp_path / "out.csv"
    header = ",".join(csv_header(LABELS))
    out.write_text("\ufeff" + header + "\nbig.jpg,happy,0.7,0.7,0.3," + "x" * 200_000 + "\n")
    with CsvSink(str(out), LABELS, append=True) as sink:  # a BOM, a 200 KB cell
        assert sink.seen("big.jpg")


def test_formula_labels_are_neutralised_in_the_header_too(tmp_path):
    labels = ("=angry", "calm")
    out = tmp_path / "out.csv"
    with CsvSink(str(out), labels) as sink:
        sink.write(Result("a.jpg", "=angry", 0.75, (0.75, 0.25)))
    assert rows(out)[0][3:5] == ["'=angry", "calm"] and rows(out)[1][1] == "'=angry"
    CsvSink(str(out), labels, append=True).close()  # still recognised as its own CSV


def test_append_knows_a_file_under_another_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(Result("d/a.jpg", "happy", 0.75, (0.75, 0.25)))
        sink.write(Result("=x.jpg", "happy", 0.75, (0.75, 0.25)))
    sink = CsvSink(str(out), LABELS, append=True)
    assert sink.seen(str(tmp_path / "d" / "a.jpg")) and sink.seen("./d/a.jpg")
    assert sink.seen("=x.jpg") and not sink.seen("d/b.jpg")
    sink.close()


def test_write_errors_are_csv_errors_and_leave_no_temp_file(tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    sink = CsvSink(str(out), LABELS)
    sink.write(OK)

    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CsvError, match="No space left on device"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_symlinks_are_followed_and_the_mode_kept(tmp_path):
    real = tmp_path / "store" / "real.csv"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with CsvSink(str(link), LABELS) as sink:
        sink.write(OK)
    assert link.is_symlink() and rows(real)[1][0] == "a.jpg"
    assert real.stat().st_mode & 0o777 == 0o600  # a private CSV stays private
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.csv"]


def test_stdout_append_writes_rows_only(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    with CsvSink("-", LABELS, append=True) as sink:  # `-o - --append >> labels.csv`
        sink.write(OK)
    assert buf.getvalue().startswith("a.jpg,happy")


def test_append_writes_each_image_whole(tmp_path):
    # With --faces, a buffer flushed mid-image left an image with some of its faces after a
    # crash, and the next --append skipped it as done.
    out = tmp_path / "out.csv"
    CsvSink(str(out), LABELS, faces=True).close()
    sink = CsvSink(str(out), LABELS, append=True, faces=True)
    faces = [
        Result("p.jpg", "happy", 0.75, (0.75, 0.25), face=i, box=(i, 0, 9, 9), det_score=0.9)
        for i in range(1, 60)
    ]
    sink.write_image(faces)
    assert len(rows(out)) == 60  # on disk before the next image or the close: not buffered
    sink.close()


def test_the_time_column_is_each_files_mtime_in_local_time(tmp_path, local_zone):
    local_zone("XYZ-2")  # UTC+2
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    os.utime(a, ns=(0, 1_796_025_909_999_999_999))  # 2026-11-30T08:05:09.99Z
    os.utime(b, ns=(0, 0))
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS, time_column=True) as sink:
        sink.write(Result(str(a), "happy", 0.75, (0.75, 0.25)))
        sink.write_image([Result(str(b), error="empty file")])
        sink.write(Result(str(tmp_path / "gone.jpg"), error="cannot read"))
    assert rows(out) == [
        ["path", "time", "label", "confidence", "happy", "sad", "error"],
        [str(a), "2026-11-30T10:05:09+02:00", "happy", "0.750000", "0.750000", "0.250000", ""],
        [str(b), "1970-01-01T02:00:00+02:00", "", "", "", "", "empty file"],
        [str(tmp_path / "gone.jpg"), "", "", "", "", "", "cannot read"],
    ]


def test_a_time_no_calendar_takes_is_an_empty_cell():
    assert file_time(10**30) == ""


@pytest.mark.parametrize(
    ("written", "asked", "message"),
    [
        ({"time_column": True}, {}, "with a time column"),
        ({}, {"time_column": True}, "without a time column"),
        ({"faces": True}, {"time_column": True}, "with face detection (--faces) and without a"),
        ({"faces": True, "time_column": True}, {"faces": True}, "with a time column (--time)"),
    ],
)
def test_append_refuses_the_other_time_mode_and_says_so(tmp_path, written, asked, message):
    out = tmp_path / "out.csv"
    with CsvSink(str(out), LABELS, **written):
        pass
    before = out.read_bytes()
    with pytest.raises(CsvError, match=re.escape(message)):
        CsvSink(str(out), LABELS, append=True, **asked)
    assert out.read_bytes() == before
    with CsvSink(str(out), LABELS, append=True, **written) as sink:
        sink.write(OK)
    assert rows(out)[0] == csv_header(LABELS, **written)


@pytest.mark.parametrize("faces", [False, True])
@pytest.mark.parametrize("time_column", [False, True])
def test_a_row_is_split_by_the_header_it_was_written_under(faces, time_column):
    layout = Layout.of(csv_header(LABELS, faces, time_column))
    stamp = "2026-11-30T08:05:09+01:00" if time_column else None
    face = Result("=x.jpg", "happy", 0.75, (0.75, 0.25), face=2, box=(1, 2, 3, 4), det_score=0.9)
    cells = layout.split(csv_row(face, len(LABELS), faces, stamp))
    assert cells == Cells(
        "=x.jpg",
        stamp or "",
        ("2", "1", "2", "3", "4", "0.9000") if faces else (),
        "happy",
        "0.750000",
        ("0.750000", "0.250000"),
        "",
    )
    failed = layout.split(csv_row(Result("b.jpg", error="-1 bytes"), len(LABELS), faces, stamp))
    assert failed.error == "-1 bytes" and failed.label == "" and failed.probabilities == ("", "")
    row = csv_row(OK, len(LABELS), faces, stamp)
    assert layout.split(row[:-1]) is None and layout.split([*row, ""]) is None


@pytest.mark.parametrize(
    "path",
    ["x.jpg", "/a/x.jpg", "", ".", "..", "/", "//", "///a//b/", "a/", "a/.", "a/./b", "a/../b"]
    + ["/..", "../x", ".x", "/a/.x", "x..", "//a/b", "a/b/..", "\udce4.jpg", "=x", " /x"],
)
@pytest.mark.parametrize("folder", ["given", "asked"])
def test_absolute_paths_are_abspath(tmp_path, monkeypatch, path, folder):
    # summary's images and --append's paths are keyed with it: it must stay abspath, only faster.
    monkeypatch.chdir(tmp_path)
    absolute = absolute_paths(os.getcwd() if folder == "given" else None)
    assert absolute(path) == os.path.abspath(path)

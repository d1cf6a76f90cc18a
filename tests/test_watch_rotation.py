"""``edgefer watch --rotate``: the policy, and the ledger's rotation across crashes at each step."""

from __future__ import annotations

import calendar
import csv
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from edgefer.csvout import csv_header
from edgefer.ledger import Ledger, LedgerError
from edgefer.pipeline import Result
from edgefer.rotation import PERIODS, Rotation

LABELS = ("happy", "sad")
HEADER = ",".join(csv_header(LABELS)) + "\n"


@pytest.fixture
def utc(local_zone):
    """Local time is UTC for the test (the periods are in local time)."""
    local_zone("UTC")


def at(text: str) -> float:
    """Seconds since the epoch of a UTC time written ``2026-11-30 23:59:59``."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


@pytest.fixture
def files(tmp_path) -> list[str]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i in range(12):
        (folder / f"{i:02d}.png").write_bytes(b"x" * (i + 1))
        paths.append(str(folder / f"{i:02d}.png"))
    return paths


def rows_of(paths: list[str]) -> list[tuple[Result, tuple[int, int]]]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((Result(path, "happy", 0.75, (0.75, 0.25)), (st.st_size, st.st_mtime_ns)))
    return out


def csv_rows(path: Path) -> list[str]:
    """The paths in a CSV, after checking its header and that its last line is whole."""
    text = path.read_text()
    assert text.startswith(HEADER) and text.endswith("\n")
    return [row[0] for row in csv.reader(text.splitlines()[1:])]


def all_rows(out: Path) -> Counter:
    """Paths over the live CSV and every CSV rotated from it."""
    counts = Counter(csv_rows(out))
    for old in out.parent.glob("labels.*.csv"):
        counts.update(csv_rows(old))
    return counts


# -- the policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("daily", Rotation(period="daily")),
        ("Monthly", Rotation(period="monthly")),
        ("weekly", Rotation(period="weekly")),
        ("1000", Rotation(max_bytes=1000)),
        ("500K", Rotation(max_bytes=500 * 1024)),
        ("50M", Rotation(max_bytes=50 * 1024**2)),
        ("50mb", Rotation(max_bytes=50 * 1024**2)),
        ("2GiB", Rotation(max_bytes=2 * 1024**3)),
    ],
)
def test_rotate_values_are_parsed(text, expected):
    assert Rotation.parse(text) == expected


@pytest.mark.parametrize("text", ["", "hourly", "0", "0M", "5T", "-1", "M", "1.5M"])
def test_other_rotate_values_are_refused(text):
    with pytest.raises(ValueError, match="--rotate"):
        Rotation.parse(text)


@pytest.mark.parametrize(
    ("period", "started", "now", "due", "name"),
    [
        ("daily", "2026-11-30 00:00:00", "2026-11-30 23:59:59", False, "labels.2026-11-30.csv"),
        ("daily", "2026-11-30 23:59:59", "2026-12-01 00:00:00", True, "labels.2026-11-30.csv"),
        # ISO weeks: Sunday 29 Nov 2026 ends week 48, Monday 30 Nov starts week 49.
        ("weekly", "2026-11-23 00:00:00", "2026-11-29 23:59:59", False, "labels.2026-W48.csv"),
        ("weekly", "2026-11-29 23:59:59", "2026-11-30 00:00:00", True, "labels.2026-W48.csv"),
        ("weekly", "2026-12-31 12:00:00", "2027-01-01 12:00:00", False, "labels.2026-W53.csv"),
        ("monthly", "2026-11-01 00:00:00", "2026-11-30 23:59:59", False, "labels.2026-11.csv"),
        ("monthly", "2026-11-30 23:59:59", "2026-12-01 00:00:00", True, "labels.2026-11.csv"),
        ("monthly", "2026-12-31 23:00:00", "2027-01-01 01:00:00", True, "labels.2026-12.csv"),
        # A clock set back (no real-time clock, before NTP) does not start a new CSV.
        ("monthly", "2026-11-30 12:00:00", "1970-01-01 00:00:10", False, "labels.2026-11.csv"),
    ],
)
def test_periods_follow_the_local_calendar(utc, tmp_path, period, started, now, due, name):
    policy = Rotation(period=period)
    assert policy.due(at(started), at(now), csv_bytes=500, header_bytes=40) is due
    assert policy.archive_path(tmp_path / "labels.csv", at(started)).name == name


def test_a_csv_with_only_its_header_is_never_rotated(utc):
    policy = Rotation(period="daily")
    assert not policy.due(at("2026-01-01 00:00:00"), at("2026-12-01 00:00:00"), 40, 40)
    assert not Rotation(max_bytes=10).due(0.0, 0.0, 40, 40)
    assert Rotation(max_bytes=10).due(0.0, 0.0, 41, 40)


def test_a_taken_name_gets_a_number(utc, tmp_path):
    policy = Rotation(max_bytes=1)
    started = at("2026-11-30 08:05:09")
    out = tmp_path / "labels.csv"
    assert policy.archive_path(out, started).name == "labels.2026-11-30T080509.csv"
    (tmp_path / "labels.2026-11-30T080509.csv").touch()
    (tmp_path / "labels.2026-11-30T080509.1.csv").symlink_to("nowhere")
    assert policy.archive_path(out, started).name == "labels.2026-11-30T080509.2.csv"


# -- the ledger -------------------------------------------------------------------------------


def test_size_rotation_keeps_every_row_once_and_carries_the_files_still_here(tmp_path, files):
    out = tmp_path / "labels.csv"
    out.touch()
    os.chmod(out, 0o640)  # an operator's choice, kept by the new CSVs
    ledger = Ledger(out, LABELS, rotation=Rotation(max_bytes=len(HEADER) + 1))
    for i in range(0, 12, 3):
        ledger.append(rows_of(files[i : i + 3]))
    ledger.close()
    old = sorted(tmp_path.glob("labels.*.csv"))
    assert len(old) == 3  # rotated before each batch after the first
    assert [len(csv_rows(p)) for p in [*old, out]] == [3, 3, 3, 3]
    assert all_rows(out) == {path: 1 for path in files}
    assert {os.stat(p).st_mode & 0o777 for p in [*old, out]} == {0o640}
    state = out.with_name("labels.csv.state").read_text().splitlines()
    assert json.loads(state[0])["previous"] in {p.name for p in old}
    reopened = Ledger(out, LABELS)  # the carried entries survive a restart
    assert all(reopened.is_done(r.path, ident) for r, ident in rows_of(files))
    reopened.close()


def test_the_new_csv_takes_the_old_ones_mode_past_the_umask(tmp_path, files):
    # 0640 (the test above) is what a new file gets under the usual umask 022 anyway; a group
    # that may write the CSV (0664) keeps that right only if the mode is set, not asked for.
    out = tmp_path / "labels.csv"
    out.touch()
    os.chmod(out, 0o664)
    umask = os.umask(0o022)
    try:
        ledger = Ledger(out, LABELS, rotation=Rotation(max_bytes=1))
        ledger.append(rows_of(files[:2]))
        ledger.append(rows_of(files[2:4]))  # rotated first
        ledger.close()
    finally:
        os.umask(umask)
    (old,) = tmp_path.glob("labels.*.csv")
    assert csv_rows(old) == files[:2] and csv_rows(out) == files[2:4]
    assert {os.stat(p).st_mode & 0o777 for p in (old, out)} == {0o664}


def test_a_lost_state_is_rebuilt_from_the_csv_and_those_rotated_before_it(tmp_path, files):
    # Adoption read only the live CSV: the files whose rows were in a rotated one were
    # classified again.
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS, rotation=Rotation(max_bytes=len(HEADER) + 1))
    for i in range(0, 9, 3):
        ledger.append(rows_of(files[i : i + 3]))
    ledger.close()
    (tmp_path / "labels.old.csv").write_text(HEADER + f"{files[9]},happy,0.75,0.75,0.25,\n")
    (tmp_path / "labels.2026-01.csv").write_text("not,ours\n")  # a stranger: left as it is
    out.with_name("labels.csv.state").unlink()
    ledger = Ledger(out, LABELS)
    assert [ledger.is_done(r.path, ident) for r, ident in rows_of(files)] == [True] * 9 + [
        False
    ] * 3
    assert (tmp_path / "labels.2026-01.csv").read_text() == "not,ours\n"
    ledger.close()
    names = ["labels.2026-11.csv", "labels.2026-W48.1.csv", "labels.2026-11-30T080509.csv"]
    names += ["labels.2026-11-30.csv", "labels.csv", "labels.2026-11.csv.bak", "x.2026-11.csv"]
    for name in names:
        (tmp_path / name).touch()
    archives = {p.name for p in Rotation.archives(out)}
    assert set(names[:4]) <= archives and not archives & set(names[4:])


@pytest.mark.parametrize("live", ["labels.csv", "my.labels.csv", "labels", "labels.2026.csv"])
def test_a_rotated_csv_names_the_csv_it_was_rotated_out_of(utc, tmp_path, live):
    # `edgefer summary` takes a daemon's CSV and those put aside beside it for one.
    out = tmp_path / live
    started = at("2026-11-30 08:05:09")
    for policy in (*(Rotation(period=p) for p in PERIODS), Rotation(max_bytes=1)):
        first = policy.archive_path(out, started)
        first.touch()
        taken = policy.archive_path(out, started)  # the name taken: .1
        assert taken.name == first.name.removesuffix(out.suffix) + ".1" + out.suffix
        assert Rotation.rotated_from(first) == out and Rotation.rotated_from(taken) == out
    assert Rotation.rotated_from(out) == out
    for other in ("labels.2026-11.csv.bak", "labels.11.csv", "labels-2026-11.csv"):
        assert Rotation.rotated_from(tmp_path / other) == tmp_path / other


def test_monthly_rotation_waits_for_a_batch_in_the_new_month(utc, tmp_path, files, monkeypatch):
    out = tmp_path / "labels.csv"
    clock = [at("2026-11-30 23:59:58")]
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: clock[0])
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))
    ledger.append(rows_of(files[:2]))
    clock[0] = at("2026-12-01 00:00:01")
    assert not list(tmp_path.glob("labels.*.csv"))  # nothing to write: nothing rotated
    os.remove(files[0])  # left the folder: not carried over
    ledger.append(rows_of(files[2:4]))
    clock[0] = at("2026-12-31 23:00:00")
    ledger.append(rows_of(files[4:5]))
    ledger.close()
    assert csv_rows(tmp_path / "labels.2026-11.csv") == files[:2]
    assert csv_rows(out) == files[2:5]
    lines = out.with_name("labels.csv.state").read_text().splitlines()
    state = [json.loads(line) for line in lines]
    assert state[0]["started"] == at("2026-12-01 00:00:01")
    assert sorted(entry[3] for entry in state[1:]) == files[1:5]


def test_a_csv_that_waited_for_its_first_row_into_a_new_month_is_not_named_for_the_old(
    utc, tmp_path, files, monkeypatch
):
    """A daemon started on 30 November whose first images came on 2 December wrote them into
    the new CSV (holding only its header, it was not rotated), then at its next batch put it
    aside as labels.2026-11.csv: a CSV named for November holding only December's rows, and
    December split over two files. A CSV is now counted from its first row."""
    out = tmp_path / "labels.csv"
    clock = [at("2026-11-30 10:00:00")]
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: clock[0])
    Ledger(out, LABELS, rotation=Rotation(period="monthly")).close()  # installed, no image yet
    clock[0] = at("2026-12-02 09:00:00")
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))  # a restart meanwhile
    ledger.append(rows_of(files[:2]))
    clock[0] = at("2026-12-02 09:00:05")
    ledger.append(rows_of(files[2:4]))
    ledger.close()
    assert not list(tmp_path.glob("labels.*.csv"))
    assert csv_rows(out) == files[:4]
    clock[0] = at("2027-01-01 08:00:00")
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))
    ledger.append(rows_of(files[4:5]))
    ledger.close()
    assert csv_rows(tmp_path / "labels.2026-12.csv") == files[:4]
    assert csv_rows(out) == files[4:5]


def test_a_first_row_in_a_new_period_whose_folder_sync_fails_goes_on_in_the_new_state(
    utc, tmp_path, files, monkeypatch, caplog
):
    """Counting a waiting CSV from its first rows rewrites the state; when the folder's fsync
    failed after the rename, the batch ended in a disk error, though the new state was in
    place. As a compaction does, it now goes on in the new state, with a warning."""
    import logging

    from edgefer import ledger as ledger_module

    out = tmp_path / "labels.csv"
    clock = [at("2026-11-30 10:00:00")]
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: clock[0])
    Ledger(out, LABELS, rotation=Rotation(period="monthly")).close()
    clock[0] = at("2026-12-02 09:00:00")
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))

    def eio(directory):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ledger_module, "_fsync_dir", eio)
    with caplog.at_level(logging.WARNING, logger="edgefer.ledger"):
        ledger.append(rows_of(files[:2]))
    assert "restarted from its first rows, but cannot write" in caplog.text
    monkeypatch.setattr(ledger_module, "_fsync_dir", lambda directory: None)
    ledger.close()
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))
    assert all(ledger.is_done(r.path, identity) for r, identity in rows_of(files[:2]))
    assert ledger.started == at("2026-12-02 09:00:00")
    ledger.close()


def test_a_state_from_before_rotation_counts_from_the_start(utc, tmp_path, files, monkeypatch):
    out = tmp_path / "labels.csv"
    Ledger(out, LABELS).close()
    state = out.with_name("labels.csv.state")
    state.write_text(json.dumps({"edgefer_state": 1, "csv_bytes": len(HEADER)}) + "\n")
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: at("2026-11-15 12:00:00"))
    ledger = Ledger(out, LABELS, rotation=Rotation(period="monthly"))
    assert ledger.started == at("2026-11-15 12:00:00")
    ledger.close()


def test_a_state_from_before_rotation_keeps_its_start_across_restarts(
    utc, tmp_path, files, monkeypatch
):
    """An upgrade from a version without --rotate: its state has no start, and the first open
    counts from then. That start must be written down, else each restart counts from itself
    and a daemon restarted every day (a nightly reboot) never rotates its CSV."""
    out = tmp_path / "labels.csv"
    row = f"{files[0]},happy,0.750000,0.750000,0.250000,\n"  # as the first watch wrote it
    out.write_text(HEADER + row)
    st = os.stat(files[0])
    state = out.with_name("labels.csv.state")
    state.write_text(  # as the first watch wrote it: no "started"
        f'{{"edgefer_state": 1, "csv_bytes": {len(HEADER)}}}\n'
        f'[{len(HEADER + row)}, {st.st_size}, {st.st_mtime_ns}, "{files[0]}"]\n'
    )
    clock = [at("2026-11-15 12:00:00")]
    monkeypatch.setattr("edgefer.ledger.time.time", lambda: clock[0])
    Ledger(out, LABELS, rotation=Rotation(period="daily")).close()  # the upgraded daemon
    clock[0] = at("2026-11-16 09:00:00")  # restarted the next day
    ledger = Ledger(out, LABELS, rotation=Rotation(period="daily"))
    assert ledger.started == at("2026-11-15 12:00:00")
    assert ledger.is_done(files[0], (st.st_size, st.st_mtime_ns))
    ledger.append(rows_of(files[1:2]))
    ledger.close()
    assert csv_rows(tmp_path / "labels.2026-11-15.csv") == files[:1]
    assert csv_rows(out) == files[1:2]


#: The renames of a rotation, in order: the journal into place (step 1), the CSV aside (2), the
#: new CSV into place (3), the journal over the state (4).
STEPS = 4


@pytest.mark.parametrize("crash_at", range(1, STEPS + 1))
def test_a_crash_at_each_step_of_a_rotation_loses_and_repeats_no_row(
    tmp_path, files, monkeypatch, caplog, crash_at
):
    """The process dies instead of its ``crash_at``-th rename: everything before it is on disk,
    nothing after. The next open completes or undoes the rotation; the files of the batch that
    triggered it have no row yet and are classified then."""
    out = tmp_path / "labels.csv"
    out.touch()
    os.chmod(out, 0o640)
    ledger = Ledger(out, LABELS, rotation=Rotation(max_bytes=1))
    ledger.append(rows_of(files[:4]))

    calls = []

    def dying(real):
        def rename(src, dst):
            calls.append((src, dst))
            if len(calls) == crash_at:
                raise KeyboardInterrupt("power cut")
            return real(src, dst)

        return rename

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", dying(os.rename))
        patch.setattr(os, "replace", dying(os.replace))
        with pytest.raises(KeyboardInterrupt):
            ledger.append(rows_of(files[4:8]))
    ledger.close()
    assert len(calls) == crash_at

    reopened = Ledger(out, LABELS, rotation=Rotation(max_bytes=1))
    assert not (tmp_path / ".labels.csv.rotate").exists()
    assert not (tmp_path / ".labels.csv.new").exists()
    assert all(reopened.is_done(r.path, ident) for r, ident in rows_of(files[:4]))
    assert not any(reopened.is_done(r.path, ident) for r, ident in rows_of(files[4:8]))
    reopened.append(rows_of(files[4:8]))
    reopened.append(rows_of(files[8:]))
    reopened.close()
    assert all_rows(out) == {path: 1 for path in files}
    # Before step 2 the rotation is undone (no journal yet at step 1: nothing to undo) and the
    # next append rotates; from step 2 on it is completed. Either way: one CSV per batch.
    rotated = sorted(csv_rows(p) for p in tmp_path.glob("labels.*.csv"))
    assert rotated == [files[:4], files[4:8]] and csv_rows(out) == files[8:]
    said = ("undid a rotation" in caplog.text, "completed a rotation" in caplog.text)
    assert said == {1: (False, False), 2: (True, False)}.get(crash_at, (False, True))
    modes = {os.stat(p).st_mode & 0o777 for p in [out, *tmp_path.glob("labels.*.csv")]}
    assert modes == {0o640}


def test_a_damaged_journal_is_refused(tmp_path):
    out = tmp_path / "labels.csv"
    Ledger(out, LABELS).close()
    (tmp_path / ".labels.csv.rotate").write_text("{not json\n")
    with pytest.raises(LedgerError, match="rotation journal"):
        Ledger(out, LABELS)


def test_a_csv_with_rows_where_a_rotation_was_making_a_new_one_is_refused(tmp_path, files):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append(rows_of(files[:2]))
    ledger.close()
    journal = {"edgefer_state": 1, "csv_bytes": len(HEADER), "previous": "labels.x.csv"}
    (tmp_path / ".labels.csv.rotate").write_text(json.dumps(journal) + "\n")
    (tmp_path / "labels.x.csv").write_text(HEADER)
    with pytest.raises(LedgerError, match="not the new CSV"):
        Ledger(out, LABELS)

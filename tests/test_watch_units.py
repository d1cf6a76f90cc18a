"""The ledger's recovery rules and the settle tracker, on files and a fake clock (no model)."""

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import peak_memory

from edgefer.csvout import (
    CsvError,
    CsvSink,
    csv_header,
    csv_line,
    csv_row,
    file_time,
    time_of,
)
from edgefer.ledger import Ledger, LedgerError
from edgefer.notify import _JournalFormatter, stderr_is_journal
from edgefer.pipeline import Result
from edgefer.watch import (
    Settler,
    WatchError,
    WatchOptions,
    check_folders,
    is_candidate,
    quiet_stop_race,
    unwatched_images,
)

LABELS = ("happy", "sad")
HEADER = ",".join(csv_header(LABELS)) + "\n"


def ok(path):
    return Result(path, "happy", 0.75, (0.75, 0.25))


def csv_paths(path):
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:]]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(name.encode())
        paths.append(str(folder / name))
    return paths


def byte_named(tmp_path, *names: bytes) -> tuple[Path, list[str]]:
    """``tmp_path/in`` with a one-byte file of each name (bytes: Latin-1 ones are not UTF-8),
    and their paths as the daemon knows them (``os.listdir``'s surrogate escapes)."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [os.path.join(str(folder), os.fsdecode(name)) for name in names]
    for path in paths:
        with open(path, "wb") as f:
            f.write(b"x")
    return folder, paths


def identity(path):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def test_new_ledger_writes_header_and_records_rows(tmp_path, images):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    assert out.read_text() == HEADER
    ledger.append([(ok(p), identity(p)) for p in images[:2]])
    assert ledger.is_done(images[0], identity(images[0]))
    assert not ledger.is_done(images[2], identity(images[2]))
    assert not ledger.is_done(images[0], (0, 0))  # another version of the file
    ledger.close()
    reopened = Ledger(out, LABELS)
    assert reopened.is_done(images[1], identity(images[1])) and len(reopened) == 2
    assert csv_paths(out) == images[:2]


def test_rows_without_state_lines_are_dropped_not_duplicated(tmp_path, images):
    """A crash after the CSV fsync but before the state lines: the batch is redone."""
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    with open(out, "a") as f:
        f.write(f"{images[1]},happy,0.75,0.75,0.25,\n{images[2]},sa")  # a row and a torn one
    ledger = Ledger(out, LABELS)
    assert csv_paths(out) == images[:1]
    assert not ledger.is_done(images[1], identity(images[1]))
    ledger.append([(ok(images[1]), identity(images[1]))])
    ledger.close()
    assert csv_paths(out) == images[:2]


def test_torn_state_line_is_cut_and_its_row_redone(tmp_path, images):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images[:2]])
    ledger.close()
    state = out.with_name("labels.csv.state")
    state.write_bytes(state.read_bytes()[:-7])  # the crash tore the last state line
    ledger = Ledger(out, LABELS)
    assert csv_paths(out) == images[:1]
    assert ledger.is_done(images[0], identity(images[0]))
    assert not ledger.is_done(images[1], identity(images[1]))
    assert state.read_bytes().endswith(b"\n")


def test_a_file_that_left_and_came_back_while_stopped_is_classified_again(tmp_path, images):
    # A file moved to --done-dir (or deleted) left its state line behind: moved back into the
    # inbox while the daemon was stopped (as the README says to, to classify it again), it
    # still read as done at the restart, and went back to done/ without a row.
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images])
    ledger.forget(images[0])  # moved to done/, which a restart must know
    ledger.close()
    kept = identity(images[1])
    os.remove(images[1])  # gone while stopped: the restart prunes it
    ledger = Ledger(out, LABELS)
    assert not ledger.is_done(images[0], identity(images[0]))  # moved back: a new row
    assert ledger.is_done(images[2], identity(images[2]))
    assert ledger.prune() == 1
    ledger.close()
    Path(images[1]).write_bytes(b"b.png")  # restored as it was, mtime too, while stopped
    os.utime(images[1], ns=(kept[1], kept[1]))
    assert identity(images[1]) == kept
    ledger = Ledger(out, LABELS)
    assert not ledger.is_done(images[1], kept)
    assert ledger.is_done(images[2], identity(images[2]))
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    assert Ledger(out, LABELS).is_done(images[0], identity(images[0]))


def test_csv_shorter_than_state_is_refused(tmp_path, images):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    out.write_text(HEADER)
    with pytest.raises(LedgerError, match="truncated or replaced"):
        Ledger(out, LABELS)


def test_a_csv_moved_away_without_its_state_is_named_missing(tmp_path, images):
    # Moving labels.csv alone away (to start a new one) was "holds 0 bytes ... truncated or
    # replaced", about a file that was not there.
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    out.rename(tmp_path / "november.csv")
    with pytest.raises(LedgerError, match=r"labels.csv is missing .* move labels.csv.state away"):
        Ledger(out, LABELS)
    assert not out.exists()


def test_a_csv_truncated_while_running_stops_the_rows(tmp_path, images):
    # logrotate's copytruncate: rows went on into the emptied CSV, without a header and at
    # offsets the state did not record, with nothing logged until the next start refused it.
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.rotate()  # its own rotation is not a truncation
    ledger.append([(ok(images[1]), identity(images[1]))])
    os.truncate(out, 0)
    with pytest.raises(LedgerError, match="truncated while edgefer watch ran .*copytruncate"):
        ledger.append([(ok(images[2]), identity(images[2]))])
    assert out.read_bytes() == b""
    ledger.close()
    # ... also before this run's first rows (a daily restart, then logrotate at night).
    out.unlink()
    out.with_name("labels.csv.state").unlink()
    Ledger(out, LABELS).close()
    ledger = Ledger(out, LABELS)
    os.truncate(out, 0)
    with pytest.raises(LedgerError, match="truncated while edgefer watch ran"):
        ledger.append([(ok(images[2]), identity(images[2]))])
    ledger.close()


def test_a_csv_that_does_not_fit_its_state_is_refused_not_cut(tmp_path, images):
    # Recovery cut whatever lay beyond the state's end: an old CSV put back beside a newer
    # state lost all its later rows (their files already in done/), and a CSV saved again with
    # CRLF line ends was cut mid-row.
    out, state = tmp_path / "labels.csv", tmp_path / "labels.csv.state"
    ledger = Ledger(out, LABELS)
    for p in images:
        ledger.append([(ok(p), identity(p))])
    ledger.close()
    old = out.read_bytes()
    out.unlink()
    state.unlink()  # moved away, as the README says, to start a new CSV
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[2]), identity(images[2]))])
    ledger.close()
    crlf = out.read_bytes().replace(b"\n", b"\r\n")
    for damaged in (old, crlf):
        out.write_bytes(damaged)
        with pytest.raises(LedgerError, match="does not fit"):
            Ledger(out, LABELS)
        assert out.read_bytes() == damaged
    out.write_bytes(old.replace(b"happy,sad", b"angry,sad", 1))
    with pytest.raises(CsvError, match="other labels"):  # refused before anything is cut
        Ledger(out, LABELS)
    assert b"angry,sad" in out.read_bytes() and len(csv_paths(out)) == 3


def test_recovery_from_a_torn_batch_reads_the_csvs_tail_not_all_of_it(tmp_path, images):
    # The restart after a crash mid-batch parsed the whole CSV to find its last row: 624 MB at
    # 300,000 rows, a MemoryError under a Pi's memory, and the CSV, still torn, failed every
    # restart after it.
    out, state = tmp_path / "labels.csv", tmp_path / "labels.csv.state"
    history = b"".join(
        csv_line(csv_row(ok(f"/gone/{i:07d}.png"), len(LABELS))).encode() for i in range(400_000)
    )
    out.write_bytes(HEADER.encode() + history)  # 20 MB of rows of files long gone
    state.write_text(json.dumps({"edgefer_state": 1, "csv_bytes": out.stat().st_size}) + "\n")
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    whole = out.read_bytes()
    with open(out, "ab") as f:
        f.write(f"{images[1]},happy,0.7".encode())  # the crash
    ledger, peak = peak_memory(lambda: Ledger(out, LABELS))
    assert ledger.is_done(images[0], identity(images[0]))
    ledger.close()
    assert out.read_bytes() == whole
    assert peak < 4_000_000, peak


def test_a_last_row_whose_name_holds_line_ends_is_found(tmp_path):
    # A quoted name may hold CR and LF: the row that ends where the state does starts at one
    # of several line ends, and its name's last line can read as a row of its own.
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a.png", "x\ny,happy,0.1,0.1,0.9,\n.png", "b\r\nc.png"]
    paths = [str(folder / name) for name in names]
    for path in paths:
        Path(path).write_bytes(b"x")
    out = tmp_path / "labels.csv"
    for last in paths[1:]:
        out.unlink(missing_ok=True)
        out.with_name("labels.csv.state").unlink(missing_ok=True)
        ledger = Ledger(out, LABELS)
        ledger.append([(ok(paths[0]), identity(paths[0])), (ok(last), identity(last))])
        ledger.close()
        whole = out.read_bytes()
        with open(out, "ab") as f:
            f.write(b"/in/torn.png,sa")
        ledger = Ledger(out, LABELS)
        assert ledger.is_done(last, identity(last))
        assert ledger.compact(slack=0) is False  # live: nothing to drop
        ledger._state_lines += 10
        assert ledger.compact(slack=0)  # now no entry says which row ends the CSV
        ledger.close()
        assert out.read_bytes() == whole
        with open(out, "ab") as f:
            f.write(b"/in/torn.png,sa")
        Ledger(out, LABELS).close()
        assert out.read_bytes() == whole


def test_classify_csv_is_adopted(tmp_path, images):
    out = tmp_path / "labels.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(ok(images[0]))
        sink.write(ok(str(tmp_path / "gone.png")))
    before = time.time()
    ledger = Ledger(out, LABELS)
    assert ledger.is_done(images[0], identity(images[0])) and len(ledger) == 1
    head = json.loads(out.with_name("labels.csv.state").read_text().splitlines()[0])
    assert head == {"edgefer_state": 1, "csv_bytes": out.stat().st_size, "started": head["started"]}
    assert before <= head["started"] <= time.time()  # adopted: --rotate counts from now


def test_the_ledgers_counts_of_one_read_in_the_singular(tmp_path, images, caplog):
    # "adopted 1 of the 1 files it has rows for", "dropping 1 bytes of an unfinished batch",
    # "a torn last entry (1 bytes)": rare lines, worded for many.
    out = tmp_path / "labels.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(ok(images[0]))
    with caplog.at_level(logging.INFO, logger="edgefer.ledger"):
        Ledger(out, LABELS).close()
        with open(out, "a") as f:
            f.write("/")  # the first byte of a row that the crash cut off
        Ledger(out, LABELS).close()
        state = out.with_name("labels.csv.state")
        with open(state, "a") as f:
            f.write("{")  # the first byte of a state entry that the crash cut off
        Ledger(out, LABELS).close()
    said = [r.getMessage() for r in caplog.records]
    assert any("adopted 1 of the 1 file it has rows for" in line for line in said), said
    assert any("dropping 1 byte of an unfinished batch" in line for line in said), said
    assert any("dropping a torn last entry (1 byte)" in line for line in said), said
    assert not any(re.search(r"\b1 (files|bytes)\b", line) for line in said), said


def test_other_labels_and_second_daemon_are_refused(tmp_path):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    with pytest.raises(CsvError, match="in use"):
        Ledger(out, LABELS)
    ledger.close()
    with pytest.raises(CsvError, match="other labels"):
        Ledger(out, ("angry", "calm"))
    with pytest.raises(CsvError, match="does not exist"):
        Ledger(tmp_path / "no" / "labels.csv", LABELS)


def test_prune_and_compact(tmp_path, images):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    for _ in range(3):
        ledger.append([(ok(p), identity(p)) for p in images])
    os.remove(images[0])
    assert ledger.prune() == 1
    assert ledger.compact(slack=0)
    ledger.close()
    state = out.with_name("labels.csv.state").read_text().splitlines()
    assert len(state) == 3  # header + the two files still there
    assert len(csv_paths(out)) == 9  # rows are history: never rewritten
    assert Ledger(out, LABELS).is_done(images[2], identity(images[2]))


def test_sighup_stops_the_daemon_as_sigterm_does():
    import signal
    import threading

    from edgefer.watch import stop_on_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # the tests may run under nohup
    try:
        stop = threading.Event()
        previous = stop_on_signals(stop)
        try:
            os.kill(os.getpid(), signal.SIGHUP)  # the default action ended it mid-batch
            assert stop.wait(5)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup: kept so
        previous = stop_on_signals(threading.Event())
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    finally:
        signal.signal(signal.SIGHUP, before)


def test_one_daemon_per_folder_that_files_are_moved_out_of(tmp_path):
    # Only the CSV was locked: a second watch with its own CSV and the same --done-dir
    # classified what the first was moving away (rows twice, "cannot move" warnings).
    from edgefer.watch import claim_inbox

    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    moving = WatchOptions(str(folder), str(tmp_path / "a.csv"), done_dir=str(done))
    reading = WatchOptions(str(folder), str(tmp_path / "b.csv"))
    held = claim_inbox(moving)
    with pytest.raises(WatchError, match="being emptied by another edgefer watch"):
        claim_inbox(reading)
    os.close(held)  # released with its descriptor
    readers = [claim_inbox(reading), claim_inbox(reading)]  # readers may share the folder
    with pytest.raises(WatchError, match="needs the folder to itself"):
        claim_inbox(moving)
    for fd in readers:
        os.close(fd)
    os.close(claim_inbox(moving))


def test_a_folder_that_takes_no_lock_is_watched_without(tmp_path, monkeypatch, caplog):
    # NFS emulates flock with byte-range locks: a directory opened read-only gets EBADF. That
    # is no other daemon: a warning, not "watched by another edgefer watch".
    from edgefer import watch

    def flock(_fd, _op):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(watch.fcntl, "flock", flock)
    options = WatchOptions(str(tmp_path), str(tmp_path / "a.csv"), done_dir=str(tmp_path / "d"))
    with caplog.at_level(logging.WARNING):
        assert watch.claim_inbox(options) is None
    assert "cannot lock" in caplog.text


def test_is_candidate():
    assert is_candidate("face.jpg") and is_candidate("FACE.PNG")
    for name in (".face.jpg", "~face.jpg", "face.jpg.part", "face.tmp", "x.crdownload", "a.txt"):
        assert not is_candidate(name)


class FakeFs:
    def __init__(self):
        self.now = 0.0
        self.files = {}

    def stat(self, path):
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime = self.files[path]
        return types.SimpleNamespace(st_size=size, st_mtime_ns=mtime, st_mode=0o100644)


def test_settler_waits_for_quiet_files():
    fs = FakeFs()
    settler = Settler(1.0, clock=lambda: fs.now, stat_fn=fs.stat)
    fs.files["a"] = (10, 1)
    settler.track("a", (10, 1), 1.0)
    fs.now = 0.5
    assert settler.pop_ready() == []
    fs.files["a"] = (20, 2)  # still growing, no event seen (polling)
    fs.now = 1.0
    assert settler.pop_ready() == [] and "a" in settler
    fs.now = 2.0
    assert settler.pop_ready() == [("a", (20, 2))] and "a" not in settler


def test_settler_events_push_back_and_complete_files_go_at_once():
    fs = FakeFs()
    settler = Settler(1.0, clock=lambda: fs.now, stat_fn=fs.stat)
    fs.files.update({"a": (1, 1), "b": (1, 1), "gone": (1, 1)})
    settler.track("a", (1, 1), 1.0)
    settler.track("gone", (1, 1), 1.0)
    fs.now = 0.9
    settler.track("a", (1, 1), 1.0)  # modified again: due at 1.9
    settler.track("b", (1, 1), 0.0)  # closed after writing: due now
    del fs.files["gone"]  # deleted before it settled
    fs.now = 1.0
    assert settler.pop_ready() == [("b", (1, 1))]
    assert "gone" not in settler
    fs.now = 1.9
    assert settler.pop_ready() == [("a", (1, 1))] and len(settler) == 0


def test_journald_lines_carry_their_priority(tmp_path, monkeypatch):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # inherited, but stderr was redirected
        assert not stderr_is_journal()
    # A newline in a message (a file's name) is shown as \x0a: it cannot forge a journal line.
    record = logging.LogRecord("edgefer", logging.WARNING, "", 0, "a\n.jpg: empty", None, None)
    assert _JournalFormatter("%(message)s").format(record) == "<4>a\\x0a.jpg: empty"
    try:  # a traceback's lines are lines, each with the priority
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("edgefer", logging.ERROR, "", 0, "a", None, sys.exc_info())
    lines = _JournalFormatter("%(message)s").format(record).splitlines()
    assert lines[:2] == ["<3>a", "<3>Traceback (most recent call last):"]
    assert lines[-1] == "<3>ValueError: boom"


def test_why_the_service_stopped_is_an_error_for_journald(tmp_path):
    # The exit-2 reason was printed without a priority: `journalctl -p err` did not show it.
    log = tmp_path / "stderr"
    with open(log, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        cmd = [sys.executable, "-m", "edgefer", "watch", str(tmp_path / "gone"), "--out", "x.csv"]
        done = subprocess.run(cmd, stderr=stream, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert log.read_text().startswith("<3>error: folder does not exist")


def test_a_compaction_whose_folder_sync_fails_goes_on_in_the_new_state(
    tmp_path, images, monkeypatch, caplog
):
    # The rename had happened when the folder's fsync failed, yet the compaction counted as not
    # done: the next batch's lines went to the replaced file, and the daemon stopped with "the
    # state was deleted or replaced while edgefer watch ran".
    from edgefer import ledger as ledger_module

    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    for _ in range(3):
        ledger.append([(ok(p), identity(p)) for p in images])

    def eio(directory):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ledger_module, "_fsync_dir", eio)
    with caplog.at_level(logging.WARNING, logger="edgefer.ledger"):
        ledger._state_lines += 10
        assert ledger.compact(slack=0)
    assert "compacted, but cannot write" in caplog.text
    monkeypatch.undo()
    ledger.append([(ok(images[0]), identity(images[0]))])
    ledger.close()
    state = out.with_name("labels.csv.state").read_text().splitlines()
    assert len(state) == 1 + 3 + 1
    assert Ledger(out, LABELS).is_done(images[0], identity(images[0]))


def test_a_compaction_that_fails_keeps_the_state_and_tries_again_later(
    tmp_path, images, monkeypatch, caplog
):
    out = tmp_path / "labels.csv"
    state = out.with_name("labels.csv.state")
    ledger = Ledger(out, LABELS)
    for _ in range(3):
        ledger.append([(ok(p), identity(p)) for p in images])
    ids = [identity(p) for p in images]
    for p in images[1:]:
        os.remove(p)
    ledger.prune()
    before = state.read_bytes()

    def full(*args, **kwargs):
        raise CsvError("cannot write labels.csv.state: No space left on device")

    monkeypatch.setattr(Ledger, "_write_state", full)
    with caplog.at_level(logging.WARNING, logger="edgefer.ledger"):
        assert not ledger.compact(slack=4)  # 9 lines for 1 live entry
    assert "not compacted: cannot write" in caplog.text and state.read_bytes() == before
    # The daemon goes on: this batch also says that the two pruned files left (2 lines).
    ledger.append([(ok(images[0]), ids[0])])
    assert not ledger.compact(slack=4)  # not at each batch: 4 lines after the failure
    monkeypatch.undo()
    ledger.append([(ok(images[0]), ids[0])])
    assert not ledger.compact(slack=4)  # 13 lines
    ledger.append([(ok(images[0]), ids[0])])
    assert ledger.compact(slack=4)
    ledger.append([(ok(images[0]), ids[0])])
    ledger.close()
    assert len(state.read_text().splitlines()) == 3
    assert Ledger(out, LABELS).is_done(images[0], ids[0])


def test_the_worker_is_alive_while_a_long_batch_gives_files(tmp_path, images, monkeypatch):
    # The heartbeat (what systemd's watchdog pings follow) moved only between batches: a batch
    # of large photos with --faces on a Pi outlasts WatchdogSec, and the kill and restart
    # redid the same batch forever.
    from edgefer import watch

    seen = []

    def slow_classify(classifier, paths, **kwargs):
        for path in paths:
            time.sleep(0.01)
            seen.append(watcher.heartbeat)
            yield ok(path)

    monkeypatch.setattr(watch, "classify_paths", slow_classify)
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    for path in images:
        watcher.ready.append((path, identity(path), 0.0))
    start = watcher.heartbeat
    watcher._run_batch()
    assert seen[0] == start and seen[1] > seen[0] and seen[2] > seen[1]
    assert csv_paths(tmp_path / "o.csv") == images
    watcher.ledger.close()


def test_the_worker_is_alive_while_one_photo_is_searched(tmp_path, images, monkeypatch):
    # With --faces the heartbeat moved as each photo's search ended, not during it: one large
    # photo on a small Pi outlasts WatchdogSec, and systemd restarted the daemon on it forever.
    from edgefer import watch
    from edgefer.photos import FaceOptions

    seen = []

    def slow_search(classifier, paths, options, on_decoded, on_progress, **kwargs):
        for path in paths:
            for _ in range(3):  # three views of one photo
                time.sleep(0.01)
                on_progress()
                seen.append(watcher.heartbeat)
            on_decoded()
            yield [ok(path)]

    monkeypatch.setattr(watch, "classify_photos", slow_search)
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"), faces=FaceOptions())
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.ready.append((images[0], identity(images[0]), 0.0))
    start = watcher.heartbeat
    watcher._run_batch()
    assert start < seen[0] < seen[1] < seen[2]
    watcher.ledger.close()


def test_the_state_is_compacted_while_the_daemon_runs(tmp_path, monkeypatch):
    # It was compacted only on start and at rotation: each file moved to --done-dir left a
    # line behind for good (100 bytes a file), and a restart after a year read them all.
    from edgefer import ledger as ledger_module
    from edgefer import watch

    monkeypatch.setattr(ledger_module, "COMPACT_SLACK", 8)
    monkeypatch.setattr(watch, "classify_paths", lambda c, paths, **kw: map(ok, paths))
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), done_dir=str(done))
    check_folders(options)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    lines = []
    for i in range(60):
        path = folder / f"{i}.png"
        path.write_bytes(b"x")
        watcher.ready.append((str(path), identity(path), 0.0))
        watcher._run_batch()
        lines.append(len((tmp_path / "o.csv.state").read_text().splitlines()))
    watcher.ledger.close()
    assert len(csv_paths(tmp_path / "o.csv")) == 60 and len(list(done.iterdir())) == 60
    assert max(lines) <= 1 + 8 + 1, lines


def test_a_name_taken_many_times_in_done_dir_is_not_searched_one_by_one(tmp_path, monkeypatch):
    # A camera that names every photo alike: the 50,000th copy tried img.1.jpg, img.2.jpg, ...
    # in turn, 179 ms a file.
    from edgefer import watch

    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    done.mkdir()
    for n in ["", *(f".{n}" for n in range(1, 301))]:
        (done / f"img{n}.jpg").write_bytes(b"old")
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), done_dir=str(done))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    lookups = []
    lexists = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda p: lookups.append(p) or lexists(p))
    photo = folder / "img.jpg"
    for expected in ("img.301.jpg", "img.302.jpg"):
        photo.write_bytes(b"new")
        lookups.clear()
        watcher._move_done(str(photo), identity(photo))
        assert (done / expected).read_bytes() == b"new" and not photo.exists()
        assert len(lookups) < 25, len(lookups)
    (done / "img.7.jpg").unlink()  # a gap: any free name will do, never a taken one
    photo.write_bytes(b"newer")
    watcher._move_done(str(photo), identity(photo))
    assert sorted(p.read_bytes() for p in done.iterdir()).count(b"newer") == 1
    assert len(list(done.iterdir())) == 303
    watcher.ledger.close()


def test_files_taken_as_complete_by_time_are_the_ones_retried(tmp_path, images):
    # A file linked in whole (`ln`) has no close event: like one found by a scan, it is ready
    # by --settle alone, so it too may read as cut short while its writer is still at work.
    from watchdog.events import FileClosedEvent, FileCreatedEvent

    from edgefer import watch

    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.close_events = True
    watcher._on_event(FileCreatedEvent(images[0]))
    assert images[0] in watcher.scanned
    assert watcher._maybe_partial(images[0], identity(images[0]), "truncated or corrupt image")
    assert not watcher._maybe_partial(images[0], identity(images[0]), "permission denied")
    watcher._on_event(FileClosedEvent(images[0]))  # a writer closed it: its errors are final
    assert images[0] not in watcher.scanned
    assert not watcher._maybe_partial(images[0], identity(images[0]), "truncated or corrupt image")
    # ... but for an empty file: a placeholder, closed, may be filled later. Once only.
    assert watcher._maybe_partial(images[0], identity(images[0]), "empty file")
    watcher.partial[images[0]] = identity(images[0])
    assert not watcher._maybe_partial(images[0], identity(images[0]), "empty file")
    watcher.ledger.close()


def test_a_folder_moved_out_takes_its_files_entries_with_it(tmp_path):
    # watchdog gives one event for a folder moved out of the inbox and none for its files:
    # their entries (and a pending file's marks) stayed for as long as the daemon ran.
    from watchdog.events import DirMovedEvent

    from edgefer import watch

    folder = tmp_path / "in"
    (folder / "day").mkdir(parents=True)
    (folder / "daybreak").mkdir()
    paths = [str(folder / "day" / f"{i}.png") for i in range(3)]
    kept = str(folder / "daybreak" / "0.png")
    for path in [*paths, kept]:
        Path(path).write_bytes(b"x")
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.ledger.append([(ok(p), identity(p)) for p in [*paths[:2], kept]])
    watcher.scanned.add(paths[2])
    watcher.partial[paths[2]] = identity(paths[2])
    (folder / "day").rename(tmp_path / "day")
    watcher._on_event(DirMovedEvent(str(folder / "day"), ""))
    assert len(watcher.ledger) == 1 and watcher.ledger.is_done(kept, identity(kept))
    assert not watcher.scanned and not watcher.partial
    watcher.ledger.close()  # says which files left
    entries = [json.loads(line) for line in (tmp_path / "o.csv.state").read_text().splitlines()[1:]]
    assert sorted(path for _, size, _, path in entries if size == -1) == paths[:2]


def test_nearing_the_inotify_watch_limit_is_said_once(tmp_path, monkeypatch, caplog):
    # watchdog leaves a folder past the limit unwatched without a word: its files were missed.
    from edgefer import watch

    (tmp_path / "in").mkdir()
    monkeypatch.setattr(watch, "inotify_watch_limit", lambda: 4)
    monkeypatch.setattr(watch, "inotify_watches", lambda: None, raising=False)  # none in /proc
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.close_events = True
    with caplog.at_level(logging.WARNING, logger="edgefer.watch"):
        for _ in range(2):
            watcher._count_folder()
        assert not caplog.records  # 3 of 4
        for _ in range(3):
            watcher._count_folder()
    (record,) = caplog.records
    assert "4 folders watched, of the 4 inotify watches" in record.getMessage()
    watcher.ledger.close()


def test_the_folder_count_follows_the_watches_as_folders_come_and_go(tmp_path, monkeypatch, caplog):
    # Folders were only ever counted up: a camera's day folders, made then deleted (or renamed)
    # daily, brought a long-running daemon to "folders watched, of the ... inotify watches"
    # with a handful of folders there. Each step's count is the watches watchdog 7 held then
    # (counted in /proc/PID/fdinfo on the same steps made for real).
    from watchdog.events import DirCreatedEvent, DirDeletedEvent, DirMovedEvent

    from edgefer import watch

    folder = tmp_path / "in"
    folder.mkdir()
    monkeypatch.setattr(watch, "inotify_watch_limit", lambda: 8)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.close_events = True

    def count(event) -> int:
        watcher._on_event(event)
        return watcher.n_folders

    with caplog.at_level(logging.WARNING, logger="edgefer.watch"):
        for day in range(20):  # made with an hour's subfolder, then deleted (rm -r)
            d = f"{folder}/d{day}"
            assert count(DirCreatedEvent(d)) == 2 and count(DirCreatedEvent(d + "/h1")) == 3
            assert count(DirDeletedEvent(d + "/h1")) == 2 and count(DirDeletedEvent(d)) == 1
        d = f"{folder}/day"
        assert count(DirCreatedEvent(d)) == 2 and count(DirCreatedEvent(d + "/h1")) == 3
        # Renamed inside: its watches go with it (watchdog: one event per folder).
        assert count(DirMovedEvent(d, d + "2")) == 3
        assert count(DirMovedEvent(d + "/h1", d + "2/h1")) == 3
        # Moved out: watchdog keeps the watches until they are deleted; a subfolder's deletion
        # is reported (under its old path), the folder's own is not.
        assert count(DirMovedEvent(d + "2", "")) == 3
        assert count(DirDeletedEvent(d + "2/h1")) == 2
        # Moved in with a subfolder: watched, it and each below it.
        assert count(DirMovedEvent("", d + "3")) == 3
        assert count(DirCreatedEvent(d + "3/h1")) == 4
        # Hidden folders are watched too (their files are not classified).
        assert count(DirCreatedEvent(f"{folder}/.cache")) == 5
        assert count(DirDeletedEvent(f"{folder}/.cache")) == 4
        assert count(DirMovedEvent(d + "3/h1", d + "3/.h1")) == 4  # its watch goes with it
        assert count(DirDeletedEvent(d + "3/.h1")) == 3
        for _ in range(5):
            assert count(DirDeletedEvent(f"{folder}/gone")) >= 1  # never below the folder's own
    assert watcher.n_folders == 1
    assert not caplog.records  # 20 days of 3 watches at most, of 8
    watcher.ledger.close()


def test_a_folder_count_that_drifted_up_is_checked_against_the_kernels_before_a_warning(
    tmp_path, monkeypatch, caplog
):
    # The count drifted up from the watches held: watchdog may report the inner folder of
    # `mkdir -p` twice (the kernel's event and its own walk of the new folder), and it frees
    # the watch of a folder moved out and then deleted with no event. A camera's day folders
    # brought a long-running daemon to "folders watched, of the ... inotify watches" with a
    # handful of folders there. `real` is what /proc/self/fdinfo would list at each step.
    from watchdog.events import DirCreatedEvent, DirDeletedEvent, DirMovedEvent

    from edgefer import watch

    folder = tmp_path / "in"
    folder.mkdir()
    real = [1]
    reads = []
    monkeypatch.setattr(watch, "inotify_watch_limit", lambda: 10)
    monkeypatch.setattr(watch, "inotify_watches", lambda: reads.append(1) or real[0], raising=False)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.close_events = True

    def step(event, watches: int) -> None:
        real[0] = watches
        watcher._on_event(event)

    with caplog.at_level(logging.WARNING, logger="edgefer.watch"):
        for day in range(20):
            d = f"{folder}/d{day}"
            if day % 2:  # mkdir -p d/h1, h1 reported twice; then rm -r d
                step(DirCreatedEvent(d), 2)
                step(DirCreatedEvent(d + "/h1"), 3)
                step(DirCreatedEvent(d + "/h1"), 3)
                step(DirDeletedEvent(d + "/h1"), 2)
                step(DirDeletedEvent(d), 1)
            else:  # made, moved out to an archive, deleted there (no event)
                step(DirCreatedEvent(d), 2)
                step(DirMovedEvent(d, ""), 2)
                real[0] = 1
        assert not caplog.records  # 3 watches at most, of 10
        assert watcher.n_folders <= 9
        assert 0 < len(reads) <= 3  # read when the count crossed the line, not per folder
        for n in range(2, 11):  # then folders that are really there, up to the line and past
            step(DirCreatedEvent(f"{folder}/keep{n}"), n)
    (record,) = caplog.records
    assert "10 folders watched, of the 10 inotify watches" in record.getMessage()
    watcher.ledger.close()


def test_the_watches_read_from_proc_are_the_observers(tmp_path, monkeypatch, caplog):
    # The count set from /proc is the kernel's: a watch for the folder and each folder below.
    from edgefer import watch

    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    (folder / "b" / "c").mkdir(parents=True)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    handlers = list(logging.getLogger("watchdog").handlers)
    before = watch.inotify_watches() or 0  # other tests' observers, if any are still up
    observer = watcher._start_observer()
    try:
        assert watch.inotify_watches() == before + 4
        watcher._watch_limit = 2 * (before + 4)
        watcher.n_folders = watcher._watch_limit  # drifted over the line
        with caplog.at_level(logging.WARNING, logger="edgefer.watch"):
            watcher._count_folder()
        assert watcher.n_folders == before + 4 and not caplog.records
    finally:
        observer.stop()
        observer.join(5)
        logging.getLogger("watchdog").handlers[:] = handlers
        watcher.ledger.close()
    assert (watch.inotify_watches() or 0) == before


def test_a_deleted_subfolder_reaches_the_folder_count_from_real_inotify(tmp_path):
    # The observer did not ask for DirDeletedEvent at all: a deleted folder went unseen.
    from edgefer import watch

    def watches() -> int:
        """This process's inotify watches, as /proc says (all its inotify descriptors)."""
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                    with open(f"/proc/self/fdinfo/{fd}") as f:
                        n += sum(line.startswith("inotify wd:") for line in f)
            except OSError:
                continue
        return n

    folder = tmp_path / "in"
    folder.mkdir()
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    handlers = list(logging.getLogger("watchdog").handlers)
    before = watches()
    observer = watcher._start_observer()
    watcher._caught_up = True  # no scan here: the count comes from events alone

    def settled(expected: int) -> None:
        deadline = time.monotonic() + 10
        while watches() - before != expected or watcher.n_folders != expected:
            assert time.monotonic() < deadline, (watches() - before, watcher.n_folders, expected)
            watcher._take_events(0.05)

    try:
        settled(1)
        for day in range(3):
            # One level at a time: for `mkdir -p`, watchdog may report the inner folder twice
            # (the kernel's event, and its own walk of the new folder), counted twice.
            (folder / f"d{day}").mkdir()
            settled(2)
            (folder / f"d{day}" / "h1").mkdir()
            settled(3)
            shutil.rmtree(folder / f"d{day}")
            settled(1)
    finally:
        observer.stop()
        observer.join(5)
        logging.getLogger("watchdog").handlers[:] = handlers
        watcher.ledger.close()


def hidden_and_done_tree(folder: Path, days: int) -> Path:
    """An inbox as `--recursive --done-dir inbox/done` leaves it: a day's folder of images,
    the done dir mirroring the days already done (their files in it), a hidden folder with
    folders (an uploader's `.partial/<job>`), and a link to a folder elsewhere."""
    (folder / "day0").mkdir(parents=True)
    (folder / "day0" / "a.png").write_bytes(b"x")
    done = folder / "done"
    for day in range(1, days + 1):
        (done / f"day{day}" / "h1").mkdir(parents=True)
        for i in range(3):
            (done / f"day{day}" / "h1" / f"{i}.png").write_bytes(b"x")
    (folder / ".partial" / "job1" / "h1").mkdir(parents=True)
    (folder / ".partial" / "job1" / "h1" / "b.png").write_bytes(b"x")
    (folder.parent / "elsewhere" / "sub").mkdir(parents=True)
    (folder / "link").symlink_to(folder.parent / "elsewhere")
    return done


def test_the_folder_count_takes_in_the_hidden_folders_and_the_done_dir_watchdog_watches(tmp_path):
    # Only the folders whose files are classified were counted, but watchdog watches every
    # folder: with --done-dir inside the inbox, its mirror of the folders done had as many
    # watches again, so the count never reached the 90% line, the kernel's count was never
    # read, and the daemon reached max_user_watches without a word.
    from edgefer import watch

    folder = tmp_path / "in"
    done = hidden_and_done_tree(folder, days=5)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True, done_dir=str(done))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    handlers = list(logging.getLogger("watchdog").handlers)
    before = watch.inotify_watches() or 0  # other tests' observers, if any are still up
    observer = watcher._start_observer()

    def settled(expected: int) -> None:
        deadline = time.monotonic() + 10
        while (watch.inotify_watches() or 0) - before != expected or watcher.n_folders != expected:
            held = (watch.inotify_watches() or 0) - before
            assert time.monotonic() < deadline, (held, watcher.n_folders, expected)
            watcher._take_events(0.05)

    try:
        # in, day0, done, 5 x (dayN, dayN/h1), .partial, job1, job1/h1; not the link's
        assert (watch.inotify_watches() or 0) - before == 16
        while not watcher._caught_up:
            watcher._step()
        assert watcher.n_folders == 16
        # Which files are classified is as it was: day0's image alone.
        assert watcher.n_caught_up == 1 and watcher.scanned == {str(folder / "day0" / "a.png")}
        # Its move into the done dir makes done/day0: a folder, and a watch, more.
        a = folder / "day0" / "a.png"
        watcher._move_done(str(a), identity(a))
        assert (done / "day0" / "a.png").exists()
        settled(17)
        shutil.rmtree(folder / ".partial" / "job1")  # a hidden folder's deletion gives two back
        settled(15)
    finally:
        observer.stop()
        observer.join(5)
        logging.getLogger("watchdog").handlers[:] = handlers
        watcher.ledger.close()


def test_a_rescan_counts_the_hidden_folders_and_the_done_dir_again(tmp_path):
    # The rescan after dropped events sets the count to the folders it finds: it found only
    # those whose files are classified, and so set the count to half the watches held.
    from edgefer import watch

    folder = tmp_path / "in"
    done = hidden_and_done_tree(folder, days=3)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True, done_dir=str(done))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    while not watcher._caught_up:
        watcher._step()
    assert watcher.n_folders == 12
    (done / "day0").mkdir()  # made while the events were dropped
    watcher.overflow.set()
    while watcher.overflow.is_set() or watcher._rescan_folders is not None:
        watcher._step()
    assert watcher.n_folders == 13 and not watcher.count_dirs
    watcher.ledger.close()


@pytest.mark.parametrize("n", [1, 2])
def test_the_caught_up_line_counts_one_file_and_two_files(tmp_path, caplog, n):
    from edgefer import watch

    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"{i}.png" for i in range(2 * n)]
    for path in paths:
        path.write_bytes(b"x")
    ledger = Ledger(tmp_path / "o.csv", LABELS)
    ledger.append([(ok(str(p)), identity(p)) for p in paths])
    for path in paths[n:]:
        path.unlink()  # gone while the daemon was stopped
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"))
    watcher = watch.Watcher(options, classifier=None, ledger=ledger)
    watcher.n_caught_up = n
    with caplog.at_level(logging.INFO, logger="edgefer.watch"):
        watcher._after_catch_up()
    ledger.close()
    files, are, have = ("file", "is", "has") if n == 1 else ("files", "are", "have")
    assert caplog.records[-1].getMessage() == (
        f"caught up: {n} {files} without a row queued; {n} {files} with a row {are} still "
        f"here, {n} {have} left"
    )


def test_a_rescan_after_dropped_events_forgets_what_left_and_recounts_the_folders(tmp_path, caplog):
    # After an inotify overflow the worker rescanned the folder, but only the catch-up at the
    # start pruned the ledger: a file deleted while its event was lost kept its entry (in
    # memory, and "still here" in the state) for as long as the daemon ran. And the folder
    # count kept the folders deleted meanwhile and missed those made.
    from edgefer import watch

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "old" / "h1").mkdir(parents=True)
    kept, gone = str(folder / "a.png"), str(folder / "sub" / "b.png")
    for path in (kept, gone):
        Path(path).write_bytes(b"x")
    ledger = Ledger(tmp_path / "o.csv", LABELS)
    ledger.append([(ok(p), identity(p)) for p in (kept, gone)])
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=ledger)
    watcher._scan_some()  # the catch-up: both files have their rows
    assert watcher._caught_up and watcher.n_folders == 4 and len(ledger) == 2
    os.unlink(gone)  # a burst, whose events the kernel dropped, with these among them
    shutil.rmtree(folder / "old")
    (folder / "new").mkdir()
    watcher.overflow.set()
    with caplog.at_level(logging.INFO, logger="edgefer.watch"):
        watcher._step()
    assert not watcher.scan_dirs and not watcher.overflow.is_set()
    assert len(ledger) == 1 and ledger.is_done(kept, identity(kept))
    assert watcher.n_folders == 3  # in, sub, new
    state = (tmp_path / "o.csv.state").read_text().splitlines()[1:]
    assert [path for _, size, _, path in map(json.loads, state) if size == -1] == [gone]
    assert caplog.records[-1].getMessage() == (
        "rescanned: 0 files without a row queued, 1 has left; 3 folders watched"
    )
    ledger.close()


def test_a_rescan_after_dropped_events_forgets_the_waits_of_files_that_left(tmp_path):
    # A file found by a scan (no close seen) or waiting out a partial read is remembered by
    # path until its delete event; with that event dropped, the path stayed for as long as the
    # daemon ran. The rescan's end now forgets those whose file is gone.
    from edgefer import watch

    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"{i}.png" for i in range(3)]
    for path in paths:
        path.write_bytes(b"x")
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher._scan_some()
    assert watcher._caught_up and watcher.scanned == {str(p) for p in paths}
    watcher.partial[str(paths[1])] = identity(paths[1])
    watcher.partial[str(paths[2])] = identity(paths[2])
    for path in paths[1:]:
        path.unlink()  # their events dropped
    watcher.overflow.set()
    while watcher.overflow.is_set() or watcher.scan_dirs or watcher._scan_iter:
        watcher._step()
    assert watcher.scanned == {str(paths[0])} and watcher.partial == {}
    watcher.ledger.close()


def test_dropped_events_during_the_catch_up_count_no_folder_twice(tmp_path, monkeypatch):
    # The rescan walks the whole tree again, while the catch-up's walk goes on: each folder
    # both walks found was counted twice.
    from edgefer import watch

    folder = tmp_path / "in"
    for name in ("a/1", "a/2", "b", "c"):
        (folder / name).mkdir(parents=True)
    monkeypatch.setattr(watch, "SCAN_STEP", 2)
    options = WatchOptions(str(folder), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher._scan_some()  # the catch-up has listed two entries of the folder
    watcher.overflow.set()
    while not watcher._caught_up:
        watcher._step()
    assert watcher.n_folders == 6
    watcher.ledger.close()


def test_watchdogs_stop_race_is_not_an_error_line(caplog):
    # A stop during a burst logged "ERROR InotifyEmitter.queue_events() called when the thread
    # is inactive" (3 stops of 3 in an audit): harmless, but a fault to read in the journal.
    quiet_stop_race()
    quiet_stop_race()  # once is enough
    inotify_log = logging.getLogger("watchdog.observers.inotify")
    assert len(inotify_log.filters) == 1
    with caplog.at_level(logging.INFO):
        inotify_log.error("InotifyEmitter.queue_events() called when the thread is inactive")
        inotify_log.error("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_an_inotify_overflow_that_watchdog_only_logs_asks_for_a_rescan(tmp_path):
    # The kernel drops events when its queue is full; watchdog says so only in its log. The
    # watcher's handler on that log raises the flag that makes the worker rescan the folder,
    # where the files whose events were lost are found.
    from edgefer import watch

    (tmp_path / "in").mkdir()
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"))
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    handlers = list(logging.getLogger("watchdog").handlers)
    observer = watcher._start_observer()
    try:
        inotify_log = logging.getLogger("watchdog.observers.inotify_c")
        inotify_log.warning("Some other watchdog warning")
        assert not watcher.overflow.is_set()
        inotify_log.warning("Inotify queue overflowed; filesystem events were lost")  # its words
        assert watcher.overflow.is_set() and watcher._can_rescan()
    finally:
        observer.stop()
        observer.join(5)
        logging.getLogger("watchdog").handlers[:] = handlers
        watcher.ledger.close()


def test_a_non_utf8_file_name_gets_its_row_and_stays_done(tmp_path):
    # A Latin-1 name (old cameras, SMB shares) must neither stop the daemon nor be redone.
    folder, (path,) = byte_named(tmp_path, b"caf\xe9.png")
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(path), identity(path))])
    ledger.close()
    assert csv_paths(out) == [f"{folder}/caf\\xe9.png"]  # UTF-8 text, the byte as \xe9
    assert Ledger(out, LABELS).is_done(path, identity(path))


def test_a_lost_state_adopts_the_rows_of_non_utf8_names(tmp_path):
    # With the state file lost, the CSV's rows are adopted: a name written as caf\xe9.png was
    # looked for under that spelling, not found, and the file was classified again. Both
    # spellings: this version's \xe9 and the first versions' \udce9.
    # The last: a UTF-8 name with \xe9 in it.
    folder, names = byte_named(tmp_path, b"caf\xe9.png", b"th\xe9.png", b"literal\\xe9.png")
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(path), identity(path)) for path in names])
    ledger.close()
    first = f"{folder}/th\\xe9.png"
    out.write_text(out.read_text().replace(first, f"{folder}/th\\udce9.png"))
    (tmp_path / "labels.csv.state").unlink()
    ledger = Ledger(out, LABELS)
    assert all(ledger.is_done(path, identity(path)) for path in names)
    ledger.close()


def test_a_torn_batch_after_a_non_utf8_name_of_the_first_watch_is_cut_not_refused(tmp_path):
    # The first versions of watch wrote such a name's bytes as Python's escapes (\udce9), not
    # as \xe9. A crash that tore the batch after that row, then an upgrade: the restart took
    # the row for another's ("does not fit", exit 2: the service stayed down, and starting a
    # new CSV as it advised classified every file in the folder again).
    folder, (path,) = byte_named(tmp_path, b"caf\xe9.png")
    out, state = tmp_path / "labels.csv", tmp_path / "labels.csv.state"
    row = f"{folder}/caf\\udce9.png,happy,0.750000,0.750000,0.250000,\n"
    out.write_text(HEADER + row + f"{folder}/next.png,hap")  # then the kill
    size, mtime_ns = identity(path)
    entry = json.dumps([len(HEADER + row), size, mtime_ns, path])  # JSON escapes it: ASCII
    state.write_text(f'{{"edgefer_state": 1, "csv_bytes": {len(HEADER)}}}\n{entry}\n')
    ledger = Ledger(out, LABELS)
    assert ledger.is_done(path, (size, mtime_ns))
    ledger.close()
    assert out.read_text() == HEADER + row


def test_damage_before_the_end_of_the_state_is_refused_not_cut(tmp_path, images):
    # Cutting at the first bad line dropped every later entry, and then their rows from the CSV.
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images])
    ledger.close()
    state = out.with_name("labels.csv.state")
    lines = state.read_text().splitlines(keepends=True)
    state.write_text("".join([lines[0], "[x" + lines[1][1:], *lines[2:]]))
    csv_before, state_before = out.read_bytes(), state.read_bytes()
    with pytest.raises(LedgerError, match="damaged at byte"):
        Ledger(out, LABELS)
    assert out.read_bytes() == csv_before and state.read_bytes() == state_before


def test_a_classify_csv_with_relative_paths_is_adopted(tmp_path, images, monkeypatch):
    # `edgefer classify in/ -o out/labels.csv` writes in/a.png: the daemon knows /abs/in/a.png.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "labels.csv"
    with CsvSink(str(out), LABELS) as sink:
        sink.write(ok(os.path.relpath(images[0], tmp_path)))
    ledger = Ledger(out, LABELS)
    assert ledger.is_done(images[0], identity(images[0]))


def test_done_dir_that_cannot_take_a_rename_is_refused_at_start(tmp_path, monkeypatch):
    # Separate systemd ReadWritePaths= entries are separate mounts: rename() fails with EXDEV.
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()

    def rename(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(WatchError, match="Invalid cross-device link .*ReadWritePaths"):
        check_folders(WatchOptions(str(folder), str(tmp_path / "o.csv"), done_dir=str(done)))
    assert list(folder.iterdir()) == [] and list(done.iterdir()) == []
    monkeypatch.undo()
    check_folders(
        WatchOptions(str(folder), str(tmp_path / "o.csv"), done_dir=str(done))
    )  # a real move works
    assert list(folder.iterdir()) == [] and list(done.iterdir()) == []


def test_a_file_being_written_waits_for_its_close():
    clock = [0.0]
    sizes = {"a.png": 10}

    def fake_stat(path):
        return types.SimpleNamespace(st_size=sizes[path], st_mtime_ns=1, st_mode=0o100644)

    settler = Settler(1.0, clock=lambda: clock[0], stat_fn=fake_stat)
    settler.track("a.png", (10, 1), 60.0, 60.0)  # created under inotify: until closed
    clock[0] = 5.0
    assert settler.pop_ready() == []  # quiet for longer than --settle, still not ready
    settler.track("a.png", (10, 1), 0.0)  # closed
    assert settler.pop_ready() == [("a.png", (10, 1))]


@pytest.mark.parametrize("unit", ["edgefer-watch.service", "edgefer-watch@.service"])
def test_units_give_one_writable_tree_for_inbox_done_and_out(unit):
    # Three ReadWritePaths= entries were three bind mounts: every move to done/ failed (EXDEV).
    text = (Path(__file__).parent.parent / "systemd" / unit).read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    (writable,) = [line.split("=", 1)[1].split() for line in lines if "ReadWritePaths=" in line]
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    words = exec_start.split()  # ExecStart=... watch INBOX --out CSV --done-dir DONE ...
    folders = [words[2], words[4], words[6]]
    assert words[3:7:2] == ["--out", "--done-dir"]
    assert len(writable) == 1
    assert all(f.startswith(writable[0] + "/") for f in folders), (writable, folders)


@pytest.mark.parametrize("unit", ["edgefer-watch.service", "edgefer-watch@.service"])
def test_units_wait_for_a_missing_inbox_rather_than_stay_down(unit):
    # A vanished inbox is exit 1 (restarted); the restart found it missing, exit 2, which
    # RestartPreventExitStatus=2 keeps down even once the folder is back.
    text = (Path(__file__).parent.parent / "systemd" / unit).read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert "--wait-for-folder" in exec_start.split()
    assert "RestartPreventExitStatus=2" in text.splitlines()


def test_images_in_subfolders_are_named_unless_recursive_or_done(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "done").mkdir(parents=True)
    (inbox / "done" / "old.png").write_bytes(b"x")  # --done-dir inside the inbox: not a miss
    (inbox / "top.png").write_bytes(b"x")
    options = WatchOptions(folder=str(inbox), output="x.csv", done_dir=str(inbox / "done"))
    assert unwatched_images(options) is None
    (inbox / "cam" / "2026-12-01").mkdir(parents=True)
    (inbox / "cam" / "2026-12-01" / "shot.jpg").write_bytes(b"x")
    assert unwatched_images(options) == str(inbox / "cam")
    assert unwatched_images(WatchOptions(str(inbox), "x.csv", recursive=True)) is None


def test_the_example_environment_file_gives_options_watch_accepts(tmp_path):
    """The unit passes $EDGEFER_WATCH_ARGS to `edgefer watch`: with the example's, a missing
    folder is the only complaint (not an unknown option or a bad value)."""
    from typer.testing import CliRunner

    from edgefer.cli import app

    example = Path(__file__).parent.parent / "systemd" / "edgefer-watch.env.example"
    line = next(
        line for line in example.read_text().splitlines() if line.startswith("EDGEFER_WATCH_ARGS=")
    )
    args = line.split("=", 1)[1].split()
    assert "--rotate" in args
    missing = tmp_path / "inbox"
    result = CliRunner().invoke(app, ["watch", str(missing), "--out", "x.csv", *args])
    assert result.exit_code == 2
    assert "does not exist" in result.output, result.output


def unit_argv(unit: str, files: dict[str, str], instance: str = "door") -> list[str]:
    """`edgefer watch`'s arguments as systemd gives them: the unit's Environment=, then its
    EnvironmentFile= read in order (``files``: each one's text by its path; a later assignment
    replaces an earlier one whole), and each ``$VAR`` word of ExecStart= split on spaces
    (unset or empty: no word)."""
    text = (Path(__file__).parent.parent / "systemd" / unit).read_text().replace("%i", instance)
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Environment="):  # before the files, which override it
            key, _, value = line.split("=", 1)[1].partition("=")
            env[key] = value
        elif line.startswith("EnvironmentFile="):
            path = line.split("=", 1)[1].removeprefix("-")  # "-": a missing file is no error
            for entry in files.get(path, "").splitlines():
                if entry and not entry.startswith("#"):
                    key, _, value = entry.partition("=")
                    env[key] = value
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv: list[str] = []
    for word in exec_start.split()[1:]:
        argv += env.get(word[1:], "").split() if word.startswith("$") else [word]
    return argv


def test_an_instances_own_options_add_to_the_shared_ones():
    # EDGEFER_WATCH_ARGS=--poll in watch-door.env replaced watch.env's value whole (systemd's
    # EnvironmentFile=), silently dropping --rotate monthly; EDGEFER_WATCH_EXTRA_ARGS adds to it.
    shared = (Path(__file__).parent.parent / "systemd" / "edgefer-watch.env.example").read_text()
    assert "#EDGEFER_WATCH_EXTRA_ARGS=--poll" in shared.splitlines()
    files = {
        "/etc/edgefer/watch.env": shared,
        "/etc/edgefer/watch-door.env": "EDGEFER_WATCH_EXTRA_ARGS=--poll --rotate daily\n",
    }
    argv = unit_argv("edgefer-watch@.service", files)
    assert argv[:2] == ["watch", "/srv/faces/door/inbox"]
    assert "--poll" in argv and "--settle" in argv and "--max-latency" in argv, argv
    # Both --rotate: the instance's comes last, and the last one given wins.
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--rotate"] == [
        "monthly",
        "daily",
    ]
    del files["/etc/edgefer/watch-door.env"]  # no instance file: the shared options alone
    assert unit_argv("edgefer-watch@.service", files)[-2:] == ["--rotate", "monthly"]


@pytest.mark.parametrize("unit", ["edgefer-watch.service", "edgefer-watch@.service"])
def test_both_units_pass_the_extra_options_of_watch_env(unit):
    # The single unit passed only EDGEFER_WATCH_ARGS: an EDGEFER_WATCH_EXTRA_ARGS line in
    # watch.env (the example has one, for the template) was ignored without a word.
    shared = (Path(__file__).parent.parent / "systemd" / "edgefer-watch.env.example").read_text()
    files = {"/etc/edgefer/watch.env": shared + "EDGEFER_WATCH_EXTRA_ARGS=--recursive --time\n"}
    argv = unit_argv(unit, files)
    assert argv[-4:] == ["--rotate", "monthly", "--recursive", "--time"], argv
    # Unset, it is empty (not systemd's "unset environment variable" notice at each start).
    text = (Path(__file__).parent.parent / "systemd" / unit).read_text()
    assert "Environment=EDGEFER_WATCH_EXTRA_ARGS=" in text.splitlines()
    assert unit_argv(unit, {"/etc/edgefer/watch.env": shared})[-2:] == ["--rotate", "monthly"]


def test_the_threads_and_batch_size_options_reach_the_interpreter(tmp_path, interpreters):
    # Neither changes a row: dropped on the way to the classifier, --threads left a daemon's
    # interpreter on every core (the Pi's other services starved) and -b sized it for 16.
    from typer.testing import CliRunner

    from edgefer.cli import app

    inbox, out = tmp_path / "inbox", tmp_path / "x.csv"
    inbox.mkdir()
    out.write_text(HEADER)  # another model's labels: refused right after the model loads
    argv = ["watch", str(inbox), "--out", str(out), "--threads", "3", "-b", "5"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "written for other labels" in result.output, result.output
    (interpreter,) = interpreters
    assert interpreter.kwargs["num_threads"] == 3
    assert interpreter.get_input_details()[0]["shape"][0] == 5


def test_watch_gives_back_the_signal_handlers_it_found(tmp_path):
    # watch made SIGTERM, SIGINT and SIGHUP set its stop event and left them so when it
    # returned, refused or stopped: in one process (CliRunner, a program calling the app), a
    # later Ctrl-C then only set a finished daemon's event, and classify took SIGINT for
    # ignored (a test of it failed whenever this file's tests ran first).
    import signal
    import threading

    from typer.testing import CliRunner

    from edgefer.cli import app

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    out = str(tmp_path / "x.csv")
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "missing"), "--out", out])
    assert result.exit_code == 2 and "does not exist" in result.output, result.output
    assert {s: signal.getsignal(s) for s in before} == before

    def sigterm_once_handled():
        # The handler is called here rather than sent to the process: were watch to return
        # first, a real SIGTERM would end the tests.
        deadline = time.monotonic() + 60
        while signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(signal.SIGTERM, None)

    stopper = threading.Thread(target=sigterm_once_handled, daemon=True)
    stopper.start()
    handlers = list(logging.getLogger("watchdog").handlers)
    result = CliRunner().invoke(app, ["watch", str(tmp_path), "--out", out, "--poll"])
    stopper.join(5)
    assert result.exit_code == 0, result.output
    assert {s: signal.getsignal(s) for s in before} == before
    # Nor is its handler on watchdog's log left behind (one more per daemon run here).
    assert logging.getLogger("watchdog").handlers == handlers


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="needs systemd-tmpfiles")
def test_the_tmpfiles_example_ages_out_done_and_rotated_csvs_only(tmp_path):
    """The example's paths and exclusions, run by systemd-tmpfiles itself on a copy of the
    /srv/faces layout (its ages cut to a second): it must never take the live CSV, its state,
    a rotation in progress or an image still in an inbox."""
    example = Path(__file__).parent.parent / "systemd" / "edgefer-watch.tmpfiles.example"
    conf = example.read_text().replace("/srv/faces", str(tmp_path))
    conf = conf.replace(":365d", ":1s").replace(":30d", ":1s")
    assert conf.count(":1s") == 4
    (tmp_path / "edgefer.conf").write_text(conf)
    kept, gone = [], []
    for root in (tmp_path, tmp_path / "door"):  # edgefer-watch.service, edgefer-watch@door
        kept += [root / "inbox" / "new.png", root / "out" / "labels.csv"]
        kept += [root / "out" / "labels.csv.state", root / "out" / ".labels.csv.rotate"]
        gone += [root / "done" / "a.png", root / "done" / "sub" / "b.png"]
        gone += [root / "out" / "labels.2026-11.csv", root / "out" / "labels.2026-11.1.csv"]
    for path in kept + gone:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    time.sleep(1.5)
    for path in gone:  # looked at since (a viewer, `edgefer summary`): a new atime, still old
        path.read_text()
    cmd = ["systemd-tmpfiles", "--clean", str(tmp_path / "edgefer.conf")]
    subprocess.run(cmd, check=True, capture_output=True)
    assert [p for p in kept if not p.exists()] == []
    assert [p for p in gone if p.exists()] == []
    assert (tmp_path / "done").is_dir() and (tmp_path / "door" / "out").is_dir()


def test_the_time_column_comes_from_the_identity_and_a_timed_csv_is_adopted(tmp_path, images):
    out = tmp_path / "labels.csv"
    with CsvSink(str(out), LABELS, time_column=True) as sink:  # edgefer classify --time
        sink.write(ok(images[0]))
    ledger = Ledger(out, LABELS, time_column=True)
    assert ledger.is_done(images[0], identity(images[0]))
    ledger.append([(ok(images[1]), (1, 1_796_025_909_000_000_000))])  # the version classified
    ledger.close()
    cells = [line.split(",")[1] for line in out.read_text().splitlines()]
    assert cells == ["time", time_of(images[0]), file_time(1_796_025_909_000_000_000)]
    with pytest.raises(CsvError, match="with a time column"):
        Ledger(out, LABELS)


def test_a_full_disk_at_start_is_exit_1_for_systemd_to_retry(tmp_path, monkeypatch):
    """A full disk made the start-up move test fail as a setup error (exit 2, "needs write
    access"), which RestartPreventExitStatus=2 leaves down for good; it clears by itself."""
    from typer.testing import CliRunner

    from edgefer.cli import app

    inbox, done = tmp_path / "inbox", tmp_path / "done"
    inbox.mkdir()

    def mkstemp(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tempfile.mkstemp", mkstemp)
    argv = ["watch", str(inbox), "--out", str(tmp_path / "x.csv"), "--done-dir", str(done)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "write access" not in result.output

    def denied(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "needs write access" in result.output
    monkeypatch.undo()

    # A new CSV whose header cannot be written (what a full disk does first): a traceback.
    def write_all(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("edgefer.ledger._write_all", write_all)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "cannot start:" in result.output and "once space is freed" in result.output
    monkeypatch.undo()

    # A network share gone stale is tried again; a state file that is a folder needs a fix
    # (exit 2), and the message names that file, not the CSV.
    def stale(self):
        raise OSError(errno.ESTALE, "Stale file handle")

    monkeypatch.setattr("edgefer.ledger.Ledger._recover", stale)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1 and "stale handle: tried again" in result.output, result.output
    monkeypatch.undo()
    (tmp_path / "x.csv.state").mkdir()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "x.csv.state" in result.output, result.output
    assert not (tmp_path / "x.csv").exists()  # a refused start leaves no empty CSV behind


def test_the_inbox_behind_a_link_as_done_dir_is_refused(tmp_path):
    # Spelled through the link, the inbox's real folder passed the check, and every file then
    # counted as already in --done-dir: nothing was ever classified.
    from edgefer.watch import WatchError, check_folders

    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "inbox").symlink_to(real)
    for done in (real, tmp_path, "/"):
        options = WatchOptions(str(tmp_path / "inbox"), str(tmp_path / "o.csv"), done_dir=str(done))
        with pytest.raises(WatchError, match="must not be the watched folder or contain it"):
            check_folders(options)
    options = WatchOptions(
        str(tmp_path / "inbox"), str(tmp_path / "o.csv"), done_dir=str(real / "sub")
    )
    check_folders(options)  # inside it is allowed, as ever


def test_a_folder_moved_out_is_not_scanned(tmp_path, caplog):
    # A subfolder moved out of a --recursive inbox (no destination inside it) was scanned where
    # it had been: "WARNING cannot list .../sub: No such file or directory".
    from watchdog.events import DirCreatedEvent, DirMovedEvent

    from edgefer import watch

    (tmp_path / "in" / "new").mkdir(parents=True)
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"), recursive=True)
    watcher = watch.Watcher(options, classifier=None, ledger=Ledger(tmp_path / "o.csv", LABELS))
    watcher.scan_dirs.clear()
    watcher._on_event(DirMovedEvent(str(tmp_path / "in" / "gone"), ""))
    assert not watcher.scan_dirs
    watcher._on_event(DirMovedEvent(str(tmp_path / "x"), str(tmp_path / "in" / "new")))
    watcher._on_event(DirCreatedEvent(str(tmp_path / "in" / "made")))
    assert list(watcher.scan_dirs) == [str(tmp_path / "in" / "new"), str(tmp_path / "in" / "made")]
    watcher.ledger.close()


def test_a_last_row_whose_name_holds_many_line_ends_is_found_after_compaction(tmp_path):
    # A compacted (or adopted) state names no last row: the row that ends the CSV was looked
    # for in its last 8 lines only, and a name of 9 lines, each with a comma, had a restart
    # after a torn batch refuse the daemon's own CSV.
    folder = tmp_path / "in"
    folder.mkdir()
    name = "".join(f"p{i},\n" for i in range(8)) + "x,last.png"
    paths = [str(folder / "a.png"), str(folder / name)]
    for path in paths:
        Path(path).write_bytes(b"x")
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in paths])
    ledger._state_lines += 10
    assert ledger.compact(slack=0)
    ledger.close()
    whole = out.read_bytes()
    with open(out, "ab") as f:
        f.write(b"/in/torn.png,sa")
    ledger = Ledger(out, LABELS)
    assert ledger.is_done(paths[1], identity(paths[1]))
    ledger.close()
    assert out.read_bytes() == whole


def test_a_compaction_that_runs_out_of_space_leaves_no_temp_file(tmp_path, images, monkeypatch):
    # Half a state file left behind held what space the disk had left: the next batch's rows
    # then failed for want of it (ENOSPC), and the daemon stopped.
    import errno

    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    for _ in range(3):
        ledger.append([(ok(p), identity(p)) for p in images])
    fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    assert not ledger.compact(slack=0)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    ledger.close()


@pytest.mark.parametrize("torn", [False, True], ids=["nothing-written", "half-a-line"])
@pytest.mark.parametrize("failing", ["flush", "append"])
def test_files_that_left_are_written_down_by_the_write_after_a_failed_one(
    tmp_path, images, monkeypatch, failing, torn
):
    # The lines saying which files left were made and forgotten before they were written: a
    # full disk (or EIO) that failed that write lost them for the rest of the run, and a file
    # moved to done/ and put back while the daemon was stopped read as done, without a row.
    import edgefer.ledger as ledger_module

    out = tmp_path / "labels.csv"
    state = out.with_name("labels.csv.state")
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images[:2]])
    ledger.forget(images[0])  # moved to done/ (here: left in place, as if put back)
    write_all = ledger_module._write_all

    def full(fd, data):
        if fd == ledger._state_fd:
            monkeypatch.undo()  # the next write finds room again
            if torn:  # ENOSPC after a short write: a line cut in two
                os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data)

    monkeypatch.setattr(ledger_module, "_write_all", full)
    with pytest.raises(OSError):
        if failing == "flush":
            ledger.flush()
        else:
            ledger.append([(ok(images[2]), identity(images[2]))])
    ledger.flush()
    lines = [json.loads(line) for line in state.read_text().splitlines()[1:]]
    assert [line[3] for line in lines] == [images[0], images[1], images[0]]
    assert lines[2][0] == lines[1][0]  # at the state's end, not past rows it does not record
    ledger.close()
    reopened = Ledger(out, LABELS)  # no line torn in the middle of the state
    assert not reopened.is_done(images[0], identity(images[0]))  # put back: a new row
    assert reopened.is_done(images[1], identity(images[1]))
    assert not reopened.is_done(images[2], identity(images[2]))  # its batch is redone
    reopened.close()


def test_half_a_state_line_that_cannot_be_cut_off_takes_no_line_after_it(
    tmp_path, images, monkeypatch
):
    # Whole lines after a torn one read as damage: the restart would refuse the state.
    import edgefer.ledger as ledger_module

    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images[:2]])
    ledger.forget(images[0])
    write_all = ledger_module._write_all

    def full(fd, data):
        if fd != ledger._state_fd:
            return write_all(fd, data)
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.EIO, "Input/output error")

    def eio(fd, length):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ledger_module, "_write_all", full)
    monkeypatch.setattr(os, "ftruncate", eio)
    with pytest.raises(OSError):
        ledger.flush()
    monkeypatch.undo()
    with pytest.raises(OSError, match="could not be cut off"):
        ledger.flush()
    ledger.close()
    reopened = Ledger(out, LABELS)  # the torn last line is cut, as after a crash
    assert reopened.is_done(images[0], identity(images[0]))  # its line was never whole
    reopened.close()


def test_the_back_off_after_a_failed_compaction_ends_with_the_next_success(tmp_path):
    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    state = out.with_name("labels.csv.state")

    def moved(k):  # a batch of files classified, then moved to --done-dir
        batch = [f"/in/{k}-{i}.png" for i in range(10)]
        ledger.append([(ok(p), (1, 1)) for p in batch])
        for p in batch:
            ledger.forget(p)
        return ledger.compact(slack=20)

    for k in range(50):  # 500 lines: a state grown before compaction after batches
        batch = [f"/in/old{k}-{i}.png" for i in range(10)]
        ledger.append([(ok(p), (1, 1)) for p in batch])
        for p in batch:
            ledger.forget(p)
    real = Ledger._write_state
    Ledger._write_state = lambda self, *a, **kw: (_ for _ in ()).throw(CsvError("disk full"))
    try:
        assert not moved(50)
    finally:
        Ledger._write_state = real
    lines = []
    for k in range(51, 200):
        moved(k)
        lines.append(len(state.read_text().splitlines()))
    ledger.close()
    after = lines[lines.index(min(lines)) :]
    assert max(after) <= 1 + 20 + 10, max(after)


@pytest.mark.parametrize(
    "error, said",
    [
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (LedgerError("/srv/labels.csv was deleted or replaced"), "/srv/labels.csv was deleted"),
    ],
)
def test_a_worker_stopped_by_the_disk_or_the_csv_says_why_in_words(
    tmp_path, images, monkeypatch, caplog, error, said
):
    # It logged a traceback, then "the worker stopped: OSError(5, 'Input/output error')" or
    # "LedgerError('... move both files away')": Python's spelling of a message that is the
    # operator's, in the journal. A bug (any other exception) keeps its traceback.
    import threading

    from edgefer import watch

    monkeypatch.setattr(watch, "classify_paths", lambda _c, paths, **_: map(ok, paths))
    options = WatchOptions(str(tmp_path / "in"), str(tmp_path / "o.csv"))
    ledger = Ledger(tmp_path / "o.csv", LABELS)
    watcher = watch.Watcher(options, classifier=None, ledger=ledger)

    def append(rows):
        raise error

    monkeypatch.setattr(ledger, "append", append)
    watcher.ready.append((images[0], identity(images[0]), 0.0))
    watcher.stop.set()
    with caplog.at_level(logging.ERROR, logger="edgefer.watch"):
        worker = threading.Thread(target=watcher.work)
        worker.start()
        worker.join()
    (record,) = caplog.records
    assert said in record.getMessage() and record.exc_info is None
    problem = watcher._problem(None, worker)
    assert problem.startswith("the worker stopped: ") and said in problem
    assert type(error).__name__ not in problem
    ledger.close()


def test_a_batch_size_over_the_cap_is_taken_as_the_cap_with_a_warning(
    tmp_path, interpreters, caplog
):
    # -b over 256 became a usage error (exit 2) when the cap came in: a unit whose options
    # were written before it (-b 512) kept the service down after an upgrade, exit 2 being
    # the units' RestartPreventExitStatus.
    from typer.testing import CliRunner

    from edgefer.classifier import MAX_BATCH_SIZE
    from edgefer.cli import app

    inbox, out = tmp_path / "inbox", tmp_path / "x.csv"
    inbox.mkdir()
    out.write_text(HEADER)  # another model's labels: refused right after the model loads
    argv = ["watch", str(inbox), "--out", str(out), "-b", str(2 * MAX_BATCH_SIZE)]
    result = CliRunner().invoke(app, argv)
    assert "written for other labels" in result.output, result.output  # got past the options
    assert f"--batch-size 512 is over {MAX_BATCH_SIZE}" in caplog.text, caplog.text
    (interpreter,) = interpreters
    assert interpreter.get_input_details()[0]["shape"][0] == MAX_BATCH_SIZE
    result = CliRunner().invoke(app, ["watch", str(inbox), "--out", str(out), "-b", "0"])
    assert result.exit_code == 2 and "Invalid value" in result.output, result.output


def test_files_that_left_are_written_down_after_a_rotation_that_failed(
    tmp_path, images, monkeypatch
):
    # The rotation's journal took the lines of files that left as written: a rename that
    # failed (full disk, EIO) left the old state in place without them, the journal was
    # dropped at the restart, and a file moved to done/ and put back read as done, without a row.
    import edgefer.ledger as ledger_module

    out = tmp_path / "labels.csv"
    ledger = Ledger(out, LABELS)
    ledger.append([(ok(p), identity(p)) for p in images[:2]])
    ledger.forget(images[0])  # moved to done/ (here: left in place, as if put back)

    def failing(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ledger_module.os, "rename", failing)
    with pytest.raises(OSError):
        ledger.rotate()
    monkeypatch.undo()
    ledger.flush()
    ledger.close()
    reopened = Ledger(out, LABELS)  # drops the journal: the rotation never happened
    assert not reopened.is_done(images[0], identity(images[0]))  # put back: a new row
    assert reopened.is_done(images[1], identity(images[1]))
    reopened.close()

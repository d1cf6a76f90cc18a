"""`edgefer watch` as a real process: producers writing the ways they do, SIGKILL, SIGTERM, systemd.

Every wait polls for a condition with a deadline; the only sleeps are the producers' own pauses
(a slow writer) and the random moments at which the daemon is killed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import LABELS, synth_images
from PIL import Image

from edgefer.csvout import file_time
from edgefer.ledger import Ledger

SETTLE = "0.3"


@pytest.fixture(scope="module")
def pngs() -> list[bytes]:
    """A few distinct 16x16 grey PNGs, as bytes."""
    x, _ = synth_images(24, seed=5)
    out = []
    for image in x:
        buf = io.BytesIO()
        Image.fromarray(image[..., 0], "L").save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def wait_for(condition, timeout: float, what: str, daemon: Daemon | None = None):
    """Poll ``condition`` until it returns something truthy; fail with the daemon's log if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.proc.poll() is not None:
            code = daemon.proc.returncode
            pytest.fail(f"daemon exited ({code}) waiting for {what}:\n{daemon.log}")
        if time.monotonic() > deadline:
            log = daemon.log if daemon else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.05)


class Daemon:
    """``python -m edgefer watch`` with an abstract notify socket standing in for systemd."""

    def __init__(self, tmp_path: Path, model: Path, inbox: Path, out: Path, *args, env=None):
        self.cmd = [sys.executable, "-m", "edgefer", "watch", str(inbox), "--out", str(out)]
        self.cmd += ["-m", str(model), "--settle", SETTLE, "--max-latency", "0.1", "-t", "1"]
        self.cmd += [str(a) for a in args]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.tmp_path = tmp_path
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.messages: list[dict[str, str]] = []

    def start(self) -> Daemon:
        self.runs += 1
        if self.sock is not None:
            self.sock.close()
        name = f"edgefer-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)
        self.sock.setblocking(False)
        self.messages = []
        self.log_path = self.tmp_path / f"daemon-{self.runs}.log"
        with open(self.log_path, "wb") as log:
            env = {**self.env, "NOTIFY_SOCKET": "@" + name}
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, env=env)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def receive(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.split("\n")))

    def saw(self, key: str) -> dict[str, str] | None:
        return next((m for m in self.receive() if key in m), None)

    def wait_ready(self, timeout: float = 60) -> dict[str, str]:
        return wait_for(lambda: self.saw("READY"), timeout, "READY=1", self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()


def complete_rows(out: Path) -> list[list[str]]:
    """Rows of the CSV so far (a line still being written is left out), header excluded."""
    try:
        text = out.read_text()
    except FileNotFoundError:
        return []
    text = text[: text.rfind("\n") + 1]
    return list(csv.reader(io.StringIO(text)))[1:]


def paths_in(out: Path) -> Counter:
    return Counter(row[0] for row in complete_rows(out))


def check_csv(out: Path) -> list[list[str]]:
    """The finished CSV: one header, whole rows with every column, the state file in step."""
    raw = out.read_bytes()
    assert raw.endswith(b"\n"), "torn last line"
    rows = list(csv.reader(io.StringIO(raw.decode())))
    assert rows[0] == ["path", "label", "confidence", *LABELS, "error"]
    assert all(len(row) == len(rows[0]) for row in rows), "a row with missing cells"
    state = out.with_name(out.name + ".state").read_text().splitlines()
    assert int(state[-1].strip("[").split(",")[0]) == len(raw) or len(state) == 1
    return rows[1:]


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def test_producers_and_systemd(tmp_path, int8_model, inbox, pngs):
    out = tmp_path / "labels.csv"
    env = {"WATCHDOG_USEC": "400000"}
    with Daemon(tmp_path, int8_model, inbox, out, env=env).start() as daemon:
        ready = daemon.wait_ready()
        assert "classified" in ready["STATUS"]
        # A slow writer keeping the file open, pausing less than --settle between chunks.
        with open(inbox / "slow.png", "wb") as f:
            for i in range(0, len(pngs[0]), 120):
                f.write(pngs[0][i : i + 120])
                f.flush()
                time.sleep(0.15)
        (inbox / "renamed.png.part").write_bytes(pngs[1])
        os.rename(inbox / "renamed.png.part", inbox / "renamed.png")
        for name in (".hidden.png", "~lock.png", "photo.jpg.crdownload", "upload.tmp"):
            (inbox / name).write_bytes(pngs[2])
        staging = tmp_path / "staging"  # an uploader's own folder, then a rename into ours
        staging.mkdir()
        (staging / "moved-in.png").write_bytes(pngs[6])
        os.rename(staging / "moved-in.png", inbox / "moved-in.png")
        (inbox / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
        with open(inbox / "abandoned.png", "wb") as f:  # deleted before it completes
            f.write(pngs[3][:50])
            f.flush()
            os.unlink(inbox / "abandoned.png")
        (inbox / "sub").mkdir()
        (inbox / "sub" / "deep.png").write_bytes(pngs[4])  # not watched without --recursive
        wait_for(lambda: len(paths_in(out)) == 4, 20, "4 rows", daemon)
        # Renamed into place, a hidden file counts; events are handled in order, so once its
        # row is there, every earlier file has been dealt with.
        os.rename(inbox / ".hidden.png", inbox / "visible.png")
        (inbox / "renamed.png.part").write_bytes(pngs[5])  # a new version, same name
        os.rename(inbox / "renamed.png.part", inbox / "renamed.png")
        wait_for(lambda: sum(paths_in(out).values()) == 6, 20, "6 rows", daemon)
        wait_for(lambda: daemon.saw("WATCHDOG"), 5, "WATCHDOG=1", daemon)
        assert daemon.stop() == 0
        assert any(m.get("STOPPING") == "1" for m in daemon.receive())
    rows = check_csv(out)
    by_name = Counter(os.path.basename(row[0]) for row in rows)
    assert by_name == {
        "slow.png": 1,
        "renamed.png": 2,
        "moved-in.png": 1,
        "corrupt.jpg": 1,
        "visible.png": 1,
    }
    errors = {os.path.basename(row[0]): row[-1] for row in rows}
    assert errors["corrupt.jpg"] and not errors["slow.png"] and not errors["visible.png"]
    assert all(row[0] == str(inbox / os.path.basename(row[0])) for row in rows)
    log = daemon.log
    assert "corrupt.jpg" in log and "\x1b[" not in log  # plain lines, no colours off a TTY


def test_a_file_whose_writer_paused_before_the_start_is_not_rowed_half_written(
    tmp_path, int8_model, inbox, pngs
):
    # At a start, a file older than --settle was ready at once: one whose writer had paused
    # (or whose daemon had been killed mid-upload) got a "truncated" row, and the whole
    # image never got one. Now it waits for a change (or RETRY_PARTIAL) before an error row.
    out = tmp_path / "labels.csv"
    with open(inbox / "upload.png", "wb") as writer:
        writer.write(pngs[0][: len(pngs[0]) // 2])
        writer.flush()
        old = time.time() - 30
        os.utime(inbox / "upload.png", (old, old))
        (inbox / "whole.png").write_bytes(pngs[1])  # caught up as usual
        with Daemon(tmp_path, int8_model, inbox, out).start() as daemon:
            daemon.wait_ready()
            wait_for(lambda: paths_in(out), 20, "the whole file's row", daemon)
            wait_for(lambda: "tried again" in daemon.log, 10, "the partial file held", daemon)
            writer.write(pngs[0][len(pngs[0]) // 2 :])
            writer.close()
            wait_for(lambda: len(paths_in(out)) == 2, 20, "2 rows", daemon)
            assert daemon.stop() == 0
    errors = {os.path.basename(row[0]): row[-1] for row in check_csv(out)}
    assert errors == {"whole.png": "", "upload.png": ""}


@pytest.mark.parametrize(
    "n",
    [
        300,
        pytest.param(
            1000,
            marks=pytest.mark.skipif(
                not os.environ.get("EDGEFER_SLOW_TESTS"), reason="set EDGEFER_SLOW_TESTS=1"
            ),
        ),
    ],
)
def test_many_files_recursive_with_done_dir(tmp_path, int8_model, inbox, pngs, n):
    out, done = tmp_path / "labels.csv", tmp_path / "done"
    args = ("--recursive", "--done-dir", done, "--verbose")
    names = [f"{i:04d}.png" if i % 2 else f"sub/{i:04d}.png" for i in range(n)]
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        daemon.wait_ready()
        (inbox / "sub").mkdir()  # files land in it before its watch exists: a scan finds them
        for i, name in enumerate(names):
            (inbox / name).write_bytes(pngs[i % len(pngs)])
        wait_for(lambda: len(paths_in(out)) == n, 60, f"{n} rows", daemon)
        wait_for(lambda: len(list(done.rglob("*.png"))) == n, 10, "all moved", daemon)
        assert daemon.stop() == 0
    assert sorted(paths_in(out).values()) == [1] * n
    assert set(paths_in(out)) == {str(inbox / name) for name in names}
    assert not list(inbox.rglob("*.png"))
    assert sorted(str(p.relative_to(done)) for p in done.rglob("*.png")) == sorted(names)
    assert "batch of 16" in daemon.log  # files that arrive together share a batch

    # A file put back from done/ while the daemon is stopped (to classify it again, as the
    # README says; copy2 keeps its size and mtime) is classified again: it left the folder.
    # (A classified file still in the folder after a crash before its move: the next test.)
    shutil.copy2(done / names[0], inbox / names[0])
    rows_before = len(complete_rows(out))
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        daemon.wait_ready()
        wait_for(lambda: len(complete_rows(out)) == rows_before + 1, 20, "its new row", daemon)
        wait_for(lambda: not (inbox / names[0]).exists(), 20, "the move", daemon)
        assert daemon.stop() == 0
    assert [row[0] for row in check_csv(out)[rows_before:]] == [str(inbox / names[0])]
    assert (done / (names[0][:-4] + ".1.png")).exists()  # never over an existing file


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_file_moved_back_from_done_while_stopped_gets_a_new_row(
    tmp_path, int8_model, inbox, pngs, stop
):
    # Its state line outlived the move: at the restart it read as classified, and went straight
    # back to done/ without a row. SIGKILL: what says it left is durable once the batch is done.
    out, done = tmp_path / "labels.csv", tmp_path / "done"
    state = out.with_name(out.name + ".state")
    with Daemon(tmp_path, int8_model, inbox, out, "--done-dir", done).start() as daemon:
        daemon.wait_ready()
        (inbox / "a.png").write_bytes(pngs[0])
        wait_for(lambda: (done / "a.png").exists(), 20, "a.png done", daemon)
        if stop == signal.SIGKILL:
            wait_for(lambda: state.read_text().count("\n") == 3, 20, "a.png left", daemon)
        daemon.stop(stop)
    os.rename(done / "a.png", inbox / "a.png")
    with Daemon(tmp_path, int8_model, inbox, out, "--done-dir", done).start() as daemon:
        daemon.wait_ready()
        wait_for(lambda: (done / "a.png").exists(), 20, "a.png done again", daemon)
        assert daemon.stop() == 0
    assert [row[0] for row in check_csv(out)] == [str(inbox / "a.png")] * 2
    assert not (done / "a.1.png").exists()


def produce(inbox: Path, names: list[str], pngs: list[bytes], seed: int) -> None:
    """Write files the ways producers do: at once, in chunks, or under a temp name then renamed."""
    rng = random.Random(seed)
    for i, name in enumerate(names):
        data = pngs[i % len(pngs)]
        mode = rng.choice(("write", "chunks", "rename"))
        if mode == "write":
            (inbox / name).write_bytes(data)
        elif mode == "chunks":
            with open(inbox / name, "wb") as f:
                f.write(data[:100])
                f.flush()
                time.sleep(0.01)
                f.write(data[100:])
        else:
            (inbox / (name + ".part")).write_bytes(data)
            os.rename(inbox / (name + ".part"), inbox / name)
        time.sleep(rng.uniform(0, 0.01))


def test_sigkill_at_random_moments_then_restart(tmp_path, int8_model, inbox, pngs):
    out = tmp_path / "labels.csv"
    names = [f"{i:03d}.png" for i in range(200)]
    seed = int(os.environ.get("EDGEFER_WATCH_SEED", "11"))  # vary it to stress the daemon
    producer = threading.Thread(target=produce, args=(inbox, names, pngs, seed))
    rng = random.Random(seed)
    producer.start()
    with Daemon(tmp_path, int8_model, inbox, out, "--batch-size", "4") as daemon:
        for kill in range(5):
            daemon.start()
            if kill:  # the first is killed while it starts up
                daemon.wait_ready()
            time.sleep(rng.uniform(0.05, 0.6))
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        producer.join()
        daemon.start().wait_ready()
        wait_for(lambda: len(paths_in(out)) == len(names), 60, "every file", daemon)
        assert daemon.stop() == 0
    rows = check_csv(out)
    assert Counter(row[0] for row in rows) == {str(inbox / name): 1 for name in names}
    assert all(not row[-1] for row in rows)  # never a half-written file classified


def strace_works() -> bool:
    strace = shutil.which("strace")
    if strace is None:
        return False
    probe = subprocess.run([strace, "-f", "-qq", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0  # ptrace may be forbidden in a container


@pytest.mark.skipif(not strace_works(), reason="needs strace and ptrace")
@pytest.mark.parametrize("when", [1, 2, 3])
def test_sigkill_inside_the_ledger_write(tmp_path, int8_model, inbox, pngs, when):
    """strace kills the daemon as its worker enters its ``when``-th fsync: 1: the first batch's
    rows are written but not synced, no state lines yet; 2: its state lines are written but not
    synced; 3: the second batch's rows are written."""
    out = tmp_path / "labels.csv"
    Ledger(out, LABELS).close()  # so that only the worker thread fsyncs (strace counts per thread)
    for i in range(10):
        (inbox / f"{i}.png").write_bytes(pngs[i])
    crashing = Daemon(tmp_path, int8_model, inbox, out, "--batch-size", "4")
    inject = f"inject=fsync:signal=SIGKILL:when={when}"
    strace = [shutil.which("strace"), "-f", "-qq", "-o", os.devnull]
    crashing.cmd = [*strace, "-e", "trace=fsync", "-e", inject, *crashing.cmd]
    with crashing.start():
        assert crashing.proc.wait(60) != 0
    assert out.read_bytes().count(b"\n") == 1 + 4 * ((when + 1) // 2)  # rows on disk, unsynced
    with Daemon(tmp_path, int8_model, inbox, out, "--batch-size", "4").start() as daemon:
        wait_for(lambda: len(paths_in(out)) == 10, 30, "every file", daemon)
        assert daemon.stop() == 0
    assert sorted(Counter(row[0] for row in check_csv(out)).values()) == [1] * 10
    assert ("unfinished batch" in daemon.log) == (when % 2 == 1)


@pytest.mark.skipif(not strace_works(), reason="needs strace and ptrace")
def test_sigkill_between_the_rows_and_the_moves(tmp_path, int8_model, inbox, pngs):
    """strace kills the daemon as its worker moves the second file of a batch to done/: the
    restart moves the three classified files left in the folder, without a second row."""
    out, done = tmp_path / "labels.csv", tmp_path / "done"
    Ledger(out, LABELS).close()  # so that only the worker thread renames (strace counts per thread)
    for i in range(4):
        (inbox / f"{i}.png").write_bytes(pngs[i])
    args = ("--batch-size", "4", "--done-dir", done)
    crashing = Daemon(tmp_path, int8_model, inbox, out, *args)
    # when=2: the worker's second rename; the main thread's one (the start's trial move) is
    # its first.
    inject = "inject=rename,renameat,renameat2:signal=SIGKILL:when=2"
    strace = [shutil.which("strace"), "-f", "-qq", "-o", os.devnull]
    crashing.cmd = [*strace, "-e", "trace=rename,renameat,renameat2", "-e", inject, *crashing.cmd]
    with crashing.start():
        assert crashing.proc.wait(60) != 0
    assert len(complete_rows(out)) == 4 and len(list(done.glob("*.png"))) == 1
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        wait_for(lambda: not list(inbox.glob("*.png")), 30, "the moves", daemon)
        assert daemon.stop() == 0
    assert sorted(Counter(row[0] for row in check_csv(out)).values()) == [1] * 4
    assert sorted(p.name for p in done.iterdir()) == [f"{i}.png" for i in range(4)]


@pytest.mark.skipif(not strace_works(), reason="needs strace and ptrace")
@pytest.mark.parametrize("when", [1, 2, 3, 4])
def test_sigkill_inside_a_rotation(tmp_path, int8_model, inbox, pngs, when):
    """``--rotate 1`` starts a new CSV before every batch but the first; strace kills the
    daemon at the ``when``-th rename of the rotation before the second batch (1: the journal
    into place, 2: the CSV aside, 3: the new CSV into place, 4: the journal over the state).
    The restart undoes or completes it, and every file has one row over all the CSVs."""
    out = tmp_path / "labels.csv"
    Ledger(out, LABELS).close()  # so that only the worker thread renames (strace counts per thread)
    for i in range(10):
        (inbox / f"{i}.png").write_bytes(pngs[i])
    args = ("--batch-size", "4", "--rotate", "1")
    crashing = Daemon(tmp_path, int8_model, inbox, out, *args)
    inject = f"inject=rename,renameat,renameat2:signal=SIGKILL:when={when}"
    strace = [shutil.which("strace"), "-f", "-qq", "-o", os.devnull]
    crashing.cmd = [*strace, "-e", "trace=rename,renameat,renameat2", "-e", inject, *crashing.cmd]
    with crashing.start():
        assert crashing.proc.wait(60) != 0

    def rows() -> Counter:
        counts = Counter()
        for csv_file in tmp_path.glob("labels*.csv"):
            counts.update(row[0] for row in complete_rows(csv_file))
        return counts

    assert sum(rows().values()) == 4  # the first batch; the second never got its rows
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        wait_for(lambda: len(rows()) == 10, 30, "every file", daemon)
        assert daemon.stop() == 0
    check_csv(out)
    assert rows() == {str(inbox / f"{i}.png"): 1 for i in range(10)}
    # Batches of up to 4 after the first: each rotated CSV holds one batch.
    assert len(list(tmp_path.glob("labels.*.csv"))) >= 2
    said = ("undid a rotation" in daemon.log, "completed a rotation" in daemon.log)
    assert said == {1: (False, False), 2: (True, False)}.get(when, (False, True))


def test_time_gives_each_row_its_files_mtime(tmp_path, int8_model, inbox, pngs):
    out = tmp_path / "labels.csv"
    mtimes = {}
    with Daemon(tmp_path, int8_model, inbox, out, "--time").start() as daemon:
        daemon.wait_ready()
        for i in range(3):  # shots saved a day apart, renamed in as a camera's uploader does
            part = tmp_path / f"{i}.part"
            part.write_bytes(pngs[i])
            mtimes[str(inbox / f"{i}.png")] = 1_796_025_909_000_000_000 + i * 86_400 * 10**9
            os.utime(part, ns=(0, mtimes[str(inbox / f"{i}.png")]))
            os.rename(part, inbox / f"{i}.png")
        wait_for(lambda: len(paths_in(out)) == 3, 30, "every file", daemon)
        assert daemon.stop() == 0
    header, *rows = list(csv.reader(io.StringIO(out.read_text())))
    assert header[:3] == ["path", "time", "label"]
    assert {row[0]: row[1] for row in rows} == {p: file_time(t) for p, t in mtimes.items()}


@pytest.mark.skipif(not strace_works(), reason="needs strace and ptrace")
def test_disk_error_exits_1_and_the_restart_redoes_the_batch(tmp_path, int8_model, inbox, pngs):
    """The first fsync of the rows fails with EIO (a failing SD card): the worker dies, the
    daemon says why and exits 1 for systemd to restart it; the restart redoes that batch."""
    out = tmp_path / "labels.csv"
    Ledger(out, LABELS).close()
    for i in range(6):
        (inbox / f"{i}.png").write_bytes(pngs[i])
    failing = Daemon(tmp_path, int8_model, inbox, out, "--batch-size", "4")
    strace = [shutil.which("strace"), "-f", "-qq", "-o", os.devnull, "-e", "trace=fsync"]
    failing.cmd = [*strace, "-e", "inject=fsync:error=EIO:when=1", *failing.cmd]
    with failing.start():
        failing.wait_ready()
        assert failing.proc.wait(30) == 1
    assert "the worker stopped" in failing.log and "Input/output error" in failing.log
    with Daemon(tmp_path, int8_model, inbox, out, "--batch-size", "4").start() as daemon:
        wait_for(lambda: len(paths_in(out)) == 6, 30, "every file", daemon)
        assert daemon.stop() == 0
    assert sorted(Counter(row[0] for row in check_csv(out)).values()) == [1] * 6


def test_sigterm_finishes_the_batch_and_exits_0(tmp_path, int8_model, inbox, pngs):
    out = tmp_path / "labels.csv"
    args = ("--batch-size", "4")
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        daemon.wait_ready()
        for i in range(60):
            (inbox / f"{i:02d}.png").write_bytes(pngs[i % len(pngs)])
        wait_for(lambda: complete_rows(out), 20, "a first row", daemon)
        assert daemon.stop() == 0
    assert "SIGTERM" in daemon.log
    assert len(check_csv(out)) <= 60  # whole rows only, the state file in step
    dated = inbox / "2026-12-01"  # a camera that files its shots by date: not watched
    dated.mkdir()
    (dated / "shot.png").write_bytes(pngs[0])
    with Daemon(tmp_path, int8_model, inbox, out, *args).start() as daemon:
        daemon.wait_ready()  # the first run may have done all 60: a stop now would beat the log
        wait_for(lambda: len(paths_in(out)) == 60, 30, "catch-up", daemon)
        daemon.stop()
    assert sorted(paths_in(out).values()) == [1] * 60
    assert f"images in {dated} are not watched: add --recursive" in daemon.log


@pytest.mark.parametrize("interval", [(), ("--poll-interval", "0.8")], ids=["default", "0.8s"])
def test_poll_mode_settles(tmp_path, int8_model, inbox, pngs, interval):
    # With scans further apart than --settle, the write below spans several of them: the
    # settling is done by stat-ing the file itself, so a slow poll only delays it.
    out = tmp_path / "labels.csv"
    with Daemon(tmp_path, int8_model, inbox, out, "--poll", *interval).start() as daemon:
        daemon.wait_ready()
        with open(inbox / "slow.png", "wb") as f:
            for i in range(0, len(pngs[0]), 40):
                f.write(pngs[0][i : i + 40])
                f.flush()
                time.sleep(0.2)  # less than --settle: still being written
        with open(inbox / "gone.png", "wb") as f:
            f.write(pngs[1][:60])
        os.unlink(inbox / "gone.png")  # deleted before it settled
        wait_for(lambda: paths_in(out), 20, "a row", daemon)
        assert daemon.stop() == 0
    rows = check_csv(out)
    assert [(row[0], row[-1]) for row in rows] == [(str(inbox / "slow.png"), "")]
    assert f"(polling every {interval[1] if interval else '0.25'} s)" in daemon.log
    assert f"model {int8_model} (interpreter threads: 1)" in daemon.log


def test_usage_errors_exit_2(tmp_path, int8_model, inbox):
    other = tmp_path / "other.csv"
    other.write_text("path,label,confidence,angry,calm,error\n")
    cases = {
        "missing": (tmp_path / "nowhere", tmp_path / "a.csv"),
        "labels": (inbox, other),
        "out dir": (inbox, tmp_path / "no" / "a.csv"),
        "directory": (inbox, tmp_path),
    }
    procs = {}
    for key, (folder, out) in cases.items():
        cmd = [sys.executable, "-m", "edgefer", "watch", folder, "--out", out, "-m", int8_model]
        procs[key] = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    messages = {key: proc.communicate(timeout=60)[1] for key, proc in procs.items()}
    assert {key: proc.returncode for key, proc in procs.items()} == dict.fromkeys(cases, 2)
    assert "nowhere" in messages["missing"]
    assert "other labels" in messages["labels"]
    assert "does not exist" in messages["out dir"]
    assert other.read_text() == "path,label,confidence,angry,calm,error\n"


def test_exits_1_when_the_folder_vanishes(tmp_path, int8_model, inbox):
    out = tmp_path / "labels.csv"
    with Daemon(tmp_path, int8_model, inbox, out).start() as daemon:
        daemon.wait_ready()
        shutil.rmtree(inbox)
        assert daemon.proc.wait(30) == 1
    assert "exiting so that the service manager restarts edgefer" in daemon.log


def test_wait_for_folder_waits_for_a_missing_inbox_then_watches_it(tmp_path, int8_model, pngs):
    # Without it, a missing folder is exit 2, which systemd does not restart: an inbox deleted
    # while the service ran (exit 1, restart) left the service down for good once made again.
    inbox, out, done = tmp_path / "inbox", tmp_path / "labels.csv", tmp_path / "done"
    env = {"WATCHDOG_USEC": "400000"}
    args = ("--done-dir", done, "--wait-for-folder")
    with Daemon(tmp_path, int8_model, inbox, out, *args, env=env).start() as daemon:
        waiting = daemon.wait_ready()
        assert waiting["STATUS"] == f"waiting for {inbox}"
        wait_for(lambda: daemon.saw("WATCHDOG"), 10, "a watchdog ping while waiting", daemon)
        assert not out.exists()  # the CSV is opened once the folder is there
        inbox.mkdir()
        (inbox / "a.png").write_bytes(pngs[0])
        wait_for(lambda: paths_in(out), 20, "a row", daemon)
        assert daemon.stop() == 0
    assert [row[0] for row in check_csv(out)] == [str(inbox / "a.png")]
    assert "does not exist: waiting for it" in daemon.log and "appeared" in daemon.log


def test_wait_for_folder_stops_on_sigterm_and_still_refuses_a_bad_model(tmp_path, int8_model):
    inbox, out = tmp_path / "inbox", tmp_path / "labels.csv"
    with Daemon(tmp_path, int8_model, inbox, out, "--wait-for-folder").start() as daemon:
        daemon.wait_ready()
        assert daemon.stop() == 0
    assert not out.exists()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with Daemon(tmp_path, bad, inbox, out, "--wait-for-folder").start() as daemon:
        assert daemon.proc.wait(60) == 2  # not a wait on the folder first
    assert "bad.tflite" in daemon.log


def test_a_writer_that_pauses_is_waited_for_until_it_closes(tmp_path, int8_model, inbox, pngs):
    # Under inotify the file was classified (and with --done-dir moved away) once it had been
    # unchanged for --settle, though still open: an error row, and the image lost to done/.
    out, done = tmp_path / "labels.csv", tmp_path / "done"
    with Daemon(tmp_path, int8_model, inbox, out, "--done-dir", done).start() as daemon:
        daemon.wait_ready()
        with open(inbox / "slow.png", "wb") as f:
            f.write(pngs[0][:60])
            f.flush()
            time.sleep(4 * float(SETTLE) + 0.5)  # a pause well past --settle and max-latency
            f.write(pngs[0][60:])
        wait_for(lambda: paths_in(out), 20, "a row", daemon)
        assert daemon.stop() == 0
    rows = check_csv(out)
    assert [(row[0], row[-1]) for row in rows] == [(str(inbox / "slow.png"), "")]
    assert (done / "slow.png").read_bytes() == pngs[0]


def test_exits_1_when_the_folder_is_replaced(tmp_path, int8_model, inbox):
    # inotify kept watching the folder moved away: nothing new was seen, and nothing said so.
    out = tmp_path / "labels.csv"
    with Daemon(tmp_path, int8_model, inbox, out).start() as daemon:
        daemon.wait_ready()
        inbox.rename(tmp_path / "inbox.old")
        inbox.mkdir()
        assert daemon.proc.wait(30) == 1
    assert "was replaced by another folder" in daemon.log


def test_a_csv_deleted_while_running_stops_it_before_rows_are_lost(
    tmp_path, int8_model, inbox, pngs
):
    out = tmp_path / "labels.csv"
    with Daemon(tmp_path, int8_model, inbox, out).start() as daemon:
        daemon.wait_ready()
        (inbox / "a.png").write_bytes(pngs[0])
        wait_for(lambda: paths_in(out), 20, "a row", daemon)
        out.unlink()
        (inbox / "b.png").write_bytes(pngs[1])
        assert daemon.proc.wait(30) == 1
    assert "labels.csv was deleted or replaced while edgefer watch ran" in daemon.log
    with Daemon(tmp_path, int8_model, inbox, out).start() as daemon:
        assert daemon.proc.wait(60) == 2  # the operator decides: restore it, or start anew
    assert "labels.csv is missing" in daemon.log
    assert "put the CSV back, or move labels.csv.state away too" in daemon.log


def test_help_does_not_load_watchdog_or_a_runtime():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgefer", "watch", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--settle" in result.stdout
    for module in ("watchdog", "tensorflow", "ai_edge_litert", "tflite_runtime"):
        assert f" {module}" not in result.stderr


def test_an_inbox_that_is_a_link_to_a_folder_is_watched(tmp_path, int8_model, pngs):
    # inotify does not follow a link given as the folder: no event came, and files were
    # classified only by the scan at the next start. Rows name the folder as it was given.
    real = tmp_path / "real"
    real.mkdir()
    inbox = tmp_path / "inbox"
    inbox.symlink_to(real)
    out, done = tmp_path / "labels.csv", inbox / "done"
    with Daemon(tmp_path, int8_model, inbox, out, "--done-dir", done).start() as daemon:
        daemon.wait_ready()
        (inbox / "a.png").write_bytes(pngs[0])
        wait_for(lambda: (real / "done" / "a.png").exists(), 20, "a.png done", daemon)
        assert daemon.stop() == 0
    assert [(row[0], row[-1]) for row in check_csv(out)] == [(str(inbox / "a.png"), "")]


def test_an_empty_file_closed_then_filled_gets_one_row(tmp_path, int8_model, inbox, pngs):
    # A placeholder created empty and closed, filled a moment later, got an "empty file"
    # failure row and (with --done-dir) was moved away empty; the image came second as x.1.png.
    out, done = tmp_path / "labels.csv", tmp_path / "done"
    with Daemon(tmp_path, int8_model, inbox, out, "--done-dir", done).start() as daemon:
        daemon.wait_ready()
        (inbox / "x.png").write_bytes(b"")
        wait_for(lambda: "tried again" in daemon.log, 20, "the retry", daemon)
        (inbox / "x.png").write_bytes(pngs[0])
        wait_for(lambda: (done / "x.png").exists(), 20, "x.png done", daemon)
        assert daemon.stop() == 0
    assert [(row[0], row[-1]) for row in check_csv(out)] == [(str(inbox / "x.png"), "")]
    assert (done / "x.png").read_bytes() == pngs[0] and not (done / "x.1.png").exists()


def live_entries(state: Path) -> set[str]:
    """The paths the state file holds as classified and still in the folder (its lines
    replayed: a size of -1 says the file left)."""
    live: dict[str, list] = {}
    for line in state.read_text().splitlines()[1:]:
        _end, size, *_rest, path = json.loads(line)
        if size < 0:
            live.pop(path, None)
        else:
            live[path] = size
    return set(live)


def test_a_subfolder_moved_out_leaves_no_entries_behind(tmp_path, int8_model, inbox, pngs):
    # Moving a subfolder out (a camera's folder of the day, archived) gives one event, for the
    # folder, none for its files: their entries stayed in memory and in the state for as long
    # as the daemon ran, and compaction kept them, a folder's worth of lines at each move.
    out, archive = tmp_path / "labels.csv", tmp_path / "archive"
    archive.mkdir()
    with Daemon(tmp_path, int8_model, inbox, out, "--recursive").start() as daemon:
        daemon.wait_ready()
        for day in ("d1", "d2", "d3"):
            (inbox / day).mkdir()
            for i in range(4):
                (inbox / day / f"{i}.png").write_bytes(pngs[i])
            wait_for(lambda d=day: len(paths_in(out)) == 4 * int(d[1]), 20, f"{day}'s rows", daemon)
            if day != "d3":
                (inbox / day).rename(archive / day)
        (inbox / "last.png").write_bytes(pngs[5])  # a batch after the moves writes the state
        wait_for(lambda: len(paths_in(out)) == 13, 20, "last.png's row", daemon)
        state = out.with_name(out.name + ".state")
        here = {str(p) for p in inbox.rglob("*.png")}
        assert live_entries(state) == here
        assert daemon.stop() == 0
    assert live_entries(state) == here

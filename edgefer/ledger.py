"""The watch daemon's ledger: which files already have their row, kept exactly once across crashes.

Two append-only files, written by one daemon at a time (an exclusive ``flock`` on the CSV):

``labels.csv``
    The ``classify`` contract's columns, ``path,label,confidence,<probs>,error``, one row per
    classification.
``labels.csv.state``
    JSON lines: first ``{"edgefer_state": 1, "csv_bytes": N, "started": T}`` (``T``: when this
    CSV was started, in seconds since the epoch: for a state written before --rotate existed,
    when this version first opened it; with a period --rotate, for a CSV that took its first
    rows in a later period than it was made in, when they came; after a rotation
    ``"previous"`` names the CSV before it), then one line per row,
    ``[end, size, mtime_ns, path]``: ``path`` was classified while it had that size and mtime,
    and its row ends at byte ``end`` of the CSV or before
    (a compacted state records the CSV's size for every entry; the entries a rotation carries
    over have their rows in the previous CSV). A line of size and mtime ``-1`` says that
    ``path`` left the folder (moved to ``--done-dir``, deleted): its entry ends there, so that a
    file put back under that name while the daemon is stopped is classified again. (A version
    that does not know these lines reads them as a version no file has: the same.)

Each batch is written in this order: CSV rows, fsync; state lines, fsync; only then are files
moved to ``--done-dir``, and the lines saying they left written (:meth:`Ledger.flush`).

**Invariant.** Let ``E`` be the largest ``end`` (or ``csv_bytes``) in the durable state. The CSV's
first ``E`` bytes are complete rows, and every file with a row there is recorded in the state
with the identity it had when it was classified. Nothing the state records lies beyond ``E``.

Recovery on open follows from it:

- a torn or unparsable state line (a crash mid-append) is cut off, with anything after it;
- CSV bytes beyond ``E`` (rows of a batch whose state lines never became durable, or a torn
  last row) are truncated: their files are not in the state, so they are classified again and
  get their row again: once, not twice, and not zero times. Only if the row that ends at ``E``
  is the state's last: else the CSV is not this state's (another put in its place, this one
  saved again with other line ends) and is refused, uncut;
- a CSV shorter than ``E`` was truncated or replaced behind the daemon's back: refused;
- a CSV without a state file (``edgefer classify`` output, a crash between creating the two,
  a state file deleted) is adopted: each of its paths whose file exists counts as classified in
  its current version, and so does each path in the CSVs rotated out of it;
- a rotation journal (``.labels.csv.rotate``, see :meth:`Ledger.rotate`) is a rotation a crash
  interrupted: it is rolled back if the old CSV is still in place, else completed.

A file is *done* when the state holds its current ``(size, mtime_ns)``; a new version under the
same name differs in one of them and gets a new row. Entries for files that left the folder are
forgotten, so memory follows the folder's size rather than the history's, and the state file is
compacted (on start, and after a batch) when such entries dominate it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import itertools
import json
import logging
import os
import re
import time
from pathlib import Path

from edgefer.csvout import (
    Cells,
    CsvError,
    Layout,
    as_utf8,
    check_header,
    csv_header,
    csv_line,
    csv_row,
    file_time,
    path_key,
    read_existing,
)
from edgefer.pipeline import Result
from edgefer.rotation import Rotation
from edgefer.summary import counted

log = logging.getLogger(__name__)

STATE_SUFFIX = ".state"
STATE_VERSION = 1
#: The longest row recovery reads to check where the state ends: any row of edgefer's is far
#: shorter (a path is at most 4 KiB on Linux).
ROW_BYTES = 1 << 16
#: The state is compacted when it holds more lines than twice its live entries and this.
COMPACT_SLACK = 1024

#: A file's version: (size in bytes, mtime in ns).
Identity = tuple[int, int]
#: The version a state line gives a file that left the folder: none a file can have.
LEFT: Identity = (-1, -1)


class LedgerError(CsvError):
    """A state file that does not fit its CSV; the message says how to start over."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: A byte of a non-UTF-8 name as a cell spells it: ``\xNN`` (:func:`as_utf8`), or ``\udcNN``
#: (the first versions of watch). Only bytes 0x80-0xff are ever spelt so.
_SPELT_BYTE = re.compile(r"\\(?:x|udc)([89a-f][0-9a-f])")


def _stat_cell(path: str) -> tuple[str, os.stat_result] | None:
    """The file a cell names, as the daemon knows it, and its stat; None if it is not there.
    A name as written first; then with its ``\\xNN`` as the bytes they stand for (Python's
    surrogate escapes, as ``os.listdir`` gives them): without that, a lost state's rows
    adopted no non-UTF-8 name, and each such file was classified again."""
    candidates = [path]
    if "\\" in path:
        candidates.append(_SPELT_BYTE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), path))
    for candidate in candidates:
        try:
            return candidate, os.stat(candidate)
        except (OSError, ValueError):  # ValueError: a NUL in a cell that is no file name
            continue
    return None


def _written_as(path: str) -> tuple[str, str]:
    """How watch wrote ``path``'s cell: :func:`as_utf8`'s ``\\xNN`` for a non-UTF-8 name's
    bytes, or, in its first versions (a CSV kept through an upgrade), Python's ``\\udcNN``."""
    return as_utf8(path), path.encode("utf-8", "backslashreplace").decode("utf-8")


class Ledger:
    """The CSV and its state file, open for appending (see the module docstring).

    Not thread-safe: one thread (the watch worker) owns it.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        labels: tuple[str, ...],
        faces: bool = False,
        rotation: Rotation | None = None,
        time_column: bool = False,
    ) -> None:
        """Open, lock and recover the ledger, creating the CSV (with its header) if missing.

        ``rotation``: when :meth:`append` starts a new CSV first (None: never). ``time_column``: the
        CSV has the ``time`` column (each file's mtime as its identity records it).

        Raises:
            CsvError: the directory is missing, a file is not writable, the CSV is locked by
                another daemon or has another model's columns, or the state does not fit it.
        """
        self.csv_path = Path(csv_path)
        self.state_path = self.csv_path.with_name(self.csv_path.name + STATE_SUFFIX)
        self.journal_path = self.csv_path.with_name(f".{self.csv_path.name}.rotate")
        self.labels = labels
        self.faces = faces
        self.time_column = time_column
        self.rotation = rotation
        self._header = csv_line(csv_header(labels, faces, time_column)).encode("utf-8")
        #: When the current CSV was started (seconds since the epoch).
        self.started = time.time()
        self._done: dict[str, Identity] = {}
        #: The state lines of files forgotten since the state file last heard of it, kept
        #: until a write of them succeeds (:meth:`flush`).
        self._gone: list[str] = []
        self._state_torn = False  # a failed append left half a line that could not be cut off
        self._state_lines = 0
        self._next_compact = 0  # after a failed compaction: not before this many lines
        self._written_end: int | None = None  # where the CSV ends, as this daemon left it
        new = self._new = not os.path.lexists(self.csv_path)
        self._csv_fd = self._open_csv()
        self._state_fd = -1
        try:
            self._recover()
            self._state_fd = self._open_state()
            # From here the CSV only grows by this daemon's rows: shorter means cut under it.
            self._written_end = self._csv_size()
        except BaseException:
            if new and self._csv_size() <= len(self._header):  # made here, holds no row
                with contextlib.suppress(OSError):
                    os.unlink(self.csv_path)
            self.close()
            raise

    # -- opening and recovery -------------------------------------------------------------

    def _open_csv(self) -> int:
        directory = self.csv_path.parent
        if not directory.is_dir():
            raise CsvError(f"output directory does not exist: {directory}")
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.csv_path, flags, 0o666)
        except OSError as exc:
            raise CsvError(f"cannot write {self.csv_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CsvError(f"{self.csv_path} is in use by another edgefer watch") from None
        return fd

    def _open_state(self) -> int:
        self._state_torn = False  # a new file, or one whose torn line the open cut
        try:
            return os.open(self.state_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise CsvError(f"cannot write {self.state_path}: {exc.strerror}") from exc

    def _csv_size(self) -> int:
        return os.fstat(self._csv_fd).st_size

    def _check_header(self) -> bool:
        try:
            return check_header(self.csv_path, self.labels, self.faces, self.time_column)
        except UnicodeDecodeError:
            raise CsvError(f"{self.csv_path} is not a CSV written by edgefer") from None

    def _recover(self) -> None:
        if self.journal_path.exists():
            self._resume_rotation()
        if not self.state_path.exists():
            self._adopt()
            return
        end, last, undated = self._read_state()
        size = self._csv_size()
        if size < end and self._new:  # labels.csv alone moved away, to start a new one
            raise LedgerError(
                f"{self.csv_path} is missing but {self.state_path} records "
                f"{counted(end, 'byte')} of its rows: put the CSV back, or move "
                f"{self.state_path.name} away too to start a new CSV (files still in the folder "
                "are then classified again)"
            )
        if size < end:
            raise LedgerError(
                f"{self.csv_path} holds {counted(size, 'byte')} but {self.state_path} records "
                f"{end}: the CSV was truncated or replaced; move both files away to start a new "
                "CSV (files still in the folder are then classified again)"
            )
        self._check_header()
        if size > end:
            self._check_batch_boundary(end, last)
            log.warning(
                "%s: dropping %s of an unfinished batch; its files are classified again",
                self.csv_path,
                counted(size - end, "byte"),
            )
            os.ftruncate(self._csv_fd, end)
            os.fsync(self._csv_fd)
        if undated:
            self._date_state()

    def _date_state(self) -> None:
        """Write down the start of a CSV whose state has none (an upgrade from a version
        without --rotate): this first open. Counted again from each open, the start moved with
        every restart, and a daemon restarted at least once a period (--rotate daily and a
        nightly reboot) never started a new CSV. Written as a compaction (every entry at the
        CSV's size), once; a failure leaves it to the next start."""
        try:
            self._write_state()
        except CsvError as exc:
            log.warning("%s: the CSV's start not recorded: %s", self.state_path, exc)

    def _check_batch_boundary(self, end: int, last: tuple[str, int] | None) -> None:
        """Refuse to cut the CSV at ``end`` unless the row there is where the state's last
        entry says its row ends: the bytes beyond are then what a crash left of a batch, not
        another CSV put back under this name, nor this one saved again with other line ends.

        ``last``: that entry's path and where the row before it ends (None: ``end`` is the
        header's, or a new, rotated or compacted CSV's size; any row of its may end there).
        Only the bytes of that last row are read, not the whole CSV: after a crash that tore
        a batch, a daemon with a year of rows behind it must restart in the memory it has."""
        if last is None:
            if self._ends_a_row(end):
                return
        else:
            path, start = last
            if 0 < end - start <= ROW_BYTES:
                data = self._read_csv(start, end)
                cells = self._one_row(data) if data.endswith(b"\n") else None
                if cells is not None and cells.path in _written_as(path):
                    return
        raise LedgerError(
            f"{self.csv_path} does not fit {self.state_path}: byte {end}, where the state's "
            "last row ends, is not the end of that row (another CSV put back under this name, "
            "or this one saved again by another program?); restore the CSV that goes with this "
            "state, or move both files away to start a new CSV"
        )

    def _ends_a_row(self, end: int) -> bool:
        """Whether byte ``end`` of the CSV is where its header or one of its rows ends, with
        no row boundary known before it: its last line, or (a quoted name may hold line
        ends, as many as it likes) the last several, must read as one row of this CSV's
        width. Each line start in the last :data:`ROW_BYTES` is tried, nearest first, each
        parsed lazily and no further than its first two rows."""
        start = max(0, end - ROW_BYTES)
        tail = self._read_csv(start, end)
        if start == 0 and tail == self._header:
            return True
        if not tail.endswith(b"\n"):
            return False
        # Blank lines at the end are blank records (a quoted cell never ends on one): the row
        # sought ends before them.
        tail = tail.rstrip(b"\r\n") + b"\n"
        cut = len(tail) - 1
        while cut > 0:
            cut = tail.rfind(b"\n", 0, cut) + 1
            if cut == 0 and start == 0:
                return False  # the header, then lines that are no row
            if self._one_row(tail, cut) is not None:
                return True
            cut -= 1
        return False

    def _read_csv(self, start: int, end: int) -> bytes:
        with open(self.csv_path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def _one_row(self, data: bytes, start: int = 0) -> Cells | None:
        """The row that ``data[start:]`` (whole lines) holds, by its columns, if it holds one
        row of this CSV's width (blank lines aside); else None. Lines are decoded as they are
        parsed, and no further than a second row: recovery tries many starts in one tail."""

        def lines():
            i = start
            while i < len(data):
                j = data.find(b"\n", i) + 1
                yield data[i:j].decode("utf-8")
                i = j

        try:
            rows = list(itertools.islice((row for row in csv.reader(lines()) if row), 2))
        except (UnicodeDecodeError, csv.Error):
            return None
        layout = Layout(self.labels, self.faces, self.time_column)
        return layout.split(rows[0]) if len(rows) == 1 else None

    def _read_state(self) -> tuple[int, tuple[str, int] | None, bool]:
        """Load the state into memory; returns E; for the entry whose row ends there, its
        path and where the row before ends (None: E is the header's, a new, rotated or
        compacted CSV's size); and whether the header lacks the CSV's start (a state written
        before --rotate existed). Cuts a torn or garbled tail off the file."""
        end: int | None = None
        undated = False
        last: tuple[str, int] | None = None
        good = 0
        with open(self.state_path, "rb") as f:
            for line in f:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    item = json.loads(line)
                    if end is None:
                        if item.get("edgefer_state") != STATE_VERSION:
                            raise ValueError("not a state header")
                        end = int(item["csv_bytes"])
                        # A state from before rotation has no start: count from now, and
                        # write that down (:meth:`_recover`).
                        undated = "started" not in item
                        self.started = float(item.get("started", self.started))
                    else:
                        row_end, size, mtime_ns, path = item
                        if int(size) < 0:  # it left the folder (:data:`LEFT`)
                            self._done.pop(str(path), None)
                        else:
                            self._done[str(path)] = (int(size), int(mtime_ns))
                            if int(row_end) > end:
                                end, last = int(row_end), (str(path), end)
                        self._state_lines += 1
                except (ValueError, TypeError, KeyError, AttributeError):
                    if end is not None and good + len(line) < f.seek(0, os.SEEK_END):
                        # Not a torn last line (all a crash can leave): cutting here would
                        # drop the rows of every later entry from the CSV.
                        raise LedgerError(
                            f"{self.state_path} is damaged at byte {good}, before its end; "
                            f"restore it, or move both it and {self.csv_path.name} away to "
                            "start a new CSV"
                        ) from None
                    break
                good += len(line)
            total = f.seek(0, os.SEEK_END)
        if end is None:
            raise LedgerError(
                f"{self.state_path} is not an edgefer state file; move it away to rebuild it "
                f"from {self.csv_path.name}"
            )
        if good < total:
            torn = counted(total - good, "byte")
            log.warning("%s: dropping a torn last entry (%s)", self.state_path, torn)
            os.truncate(self.state_path, good)
        return end, last, undated

    def _adopt(self) -> None:
        """No state yet: start one for a new CSV, or from the rows of an existing CSV."""
        if self._csv_size() == 0:
            _write_all(self._csv_fd, self._header)
            os.fsync(self._csv_fd)
        else:
            try:  # also repairs a torn last line
                paths = read_existing(self.csv_path, self.labels, self.faces, self.time_column)
            except UnicodeDecodeError:
                raise CsvError(f"{self.csv_path} is not a CSV written by edgefer") from None
            # A state lost beside a CSV that was rotated: the rows before are in the old CSVs.
            archives = Rotation.archives(self.csv_path)
            for archive in archives:
                paths |= self._archived_paths(archive)
            for cell in paths:
                # `edgefer classify DIR` writes paths as given (often relative): the daemon
                # knows files by absolute path.
                found = _stat_cell(path_key(cell))
                if found is not None:
                    path, st = found
                    self._done[path] = (st.st_size, st.st_mtime_ns)
            if paths:
                log.info(
                    "%s: no state file; adopted %d of the %s it%s rows for (those here)",
                    self.csv_path,
                    len(self._done),
                    counted(len(paths), "file"),
                    f" and {counted(len(archives), 'CSV')} rotated before it have"
                    if archives
                    else " has",
                )
        self._write_state()

    def _archived_paths(self, archive: Path) -> set[str]:
        """The path cells of a rotated CSV, read as it is (never repaired: it is not ours to
        change); empty, with a warning, for one of other columns or not UTF-8 text."""
        try:
            return read_existing(archive, self.labels, self.faces, self.time_column, repair=False)
        except (CsvError, UnicodeDecodeError, csv.Error, OSError) as exc:
            log.warning("%s: rows not adopted: %s", archive, exc)
        return set()

    def _write_state(self, target: Path | None = None, **header: object) -> None:
        """Replace the state file (or ``target``) atomically by one recording the in-memory
        entries; ``header`` overrides the header's items (``csv_bytes``, ``started``)."""
        target = target or self.state_path
        size = int(header["csv_bytes"]) if "csv_bytes" in header else self._csv_size()
        head = {"edgefer_state": STATE_VERSION, "csv_bytes": size, "started": self.started}
        head.update(header)
        lines = [json.dumps(head) + "\n"]
        lines.extend(json.dumps([size, *ident, path]) + "\n" for path, ident in self._done.items())
        tmp = target.with_name(f".{self.state_path.name}.tmp")
        try:
            with open(tmp, "w", encoding="ascii") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            # Not left behind: on a full disk, half a state file holds the space the next
            # batch's rows need.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CsvError(f"cannot write {target}: {exc.strerror}") from exc
        if target == self.state_path:
            self._state_lines = len(self._done)
            self._gone.clear()  # absent from it: nothing more to say of them

    # -- use ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._done)

    def is_done(self, path: str, identity: Identity) -> bool:
        """Whether ``path`` already has a row for this version of the file."""
        return self._done.get(path) == identity

    def append(self, rows: list[tuple[Result, Identity]]) -> None:
        """Append one batch of rows, durably, in the order of the module docstring.

        Raises:
            OSError: the disk is full or failing; the batch is then redone after a restart.
            LedgerError: the CSV or state file was deleted, replaced or cut short under it.
        """
        if not rows:
            return
        self._check_in_place()
        now = time.time()
        end = self._csv_size()
        if (
            self.rotation
            and end <= len(self._header)
            and self.rotation.new_period(self.started, now)
        ):
            self._start_at(now)  # its first rows: the period is theirs
        elif self.rotation and self.rotation.due(self.started, now, end, len(self._header)):
            self.rotate(now)
            end = self._csv_size()
        data: list[bytes] = []
        lines = self._gone[:]  # first: they left before this batch's files came
        left = len(lines)
        for result, identity in rows:
            # csv_row shows a non-UTF-8 file name's bytes as \xNN, so this always encodes.
            when = file_time(identity[1]) if self.time_column else None
            row = csv_line(csv_row(result, len(self.labels), self.faces, when)).encode("utf-8")
            end += len(row)
            data.append(row)
            lines.append(json.dumps([end, *identity, result.path]) + "\n")
        _write_all(self._csv_fd, b"".join(data))
        os.fsync(self._csv_fd)
        self._written_end = end
        self._append_state(lines, left)
        for result, identity in rows:
            self._done[result.path] = identity

    def _start_at(self, now: float) -> None:
        """Count a CSV that holds only its header, made in an earlier period, from its first
        rows (``now``), durably. Counted from its making, one left without a row into a new
        period (a daemon installed on 30 November, its first image on 2 December) took its
        first rows, and was put aside at the next batch, named for the old period
        (labels.2026-11.csv, holding December's rows)."""
        self.started = now
        self._replace_state("restarted from its first rows")

    def _check_in_place(self) -> None:
        """Raise LedgerError if the CSV or state file was deleted or replaced under us: rows
        appended to a file no longer in the folder would be lost without a word; or if the CSV
        was cut shorter than this daemon wrote it (logrotate's ``copytruncate``): rows would go
        on into a CSV without a header, at offsets the state does not record."""
        if self._written_end is not None and self._csv_size() < self._written_end:
            raise LedgerError(
                f"{self.csv_path} was truncated while edgefer watch ran ({self._csv_size()} "
                f"bytes, {self._written_end} written; logrotate's copytruncate?): edgefer "
                "rotates its own CSV (--rotate); to start a new CSV, stop the daemon and move "
                f"both {self.csv_path.name} and {self.state_path.name} away"
            )
        for fd, path in ((self._csv_fd, self.csv_path), (self._state_fd, self.state_path)):
            opened = os.fstat(fd)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
            if named is None or (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
                raise LedgerError(
                    f"{path} was deleted or replaced while edgefer watch ran; to start a new "
                    f"CSV, stop the daemon and move both {self.csv_path.name} and "
                    f"{self.state_path.name} away"
                )

    # -- rotation -------------------------------------------------------------------------

    def rotate(self, now: float | None = None) -> Path:
        """Put the CSV aside under a dated name and go on in a new one; returns the old one's
        path. Files still in the folder keep their entries (their rows are in the old CSV), so
        they are not classified again.

        Four steps, each durable (fsynced, with its directory) before the next:

        1. the new state, complete, is written as the journal, naming the old CSV's new name;
        2. the CSV is renamed to that name;
        3. a new CSV holding the header is made under a temp name and renamed into place;
        4. the journal replaces the state file.

        No row goes into the new CSV before step 4. A crash before step 2 leaves the old CSV
        and state in place, and the open drops the journal; after it, the open completes steps
        3 and 4 (:meth:`_resume_rotation`).

        Raises:
            OSError, CsvError: the disk is full or failing; the open after a restart completes
                or undoes the rotation.
        """
        now = time.time() if now is None else now
        self.prune()
        archive = (self.rotation or Rotation()).archive_path(self.csv_path, self.started)
        mode = os.fstat(self._csv_fd).st_mode & 0o7777
        header = {"csv_bytes": len(self._header), "started": now, "previous": archive.name}
        self._write_state(self.journal_path, **header)
        os.rename(self.csv_path, archive)
        _fsync_dir(self.csv_path.parent)
        tmp = self._new_csv_path()
        fd = os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
            os.fchmod(fd, mode)  # the old CSV's, whatever the umask
            _write_all(fd, self._header)
            os.fsync(fd)
            os.rename(tmp, self.csv_path)
            _fsync_dir(self.csv_path.parent)
            os.replace(self.journal_path, self.state_path)
            _fsync_dir(self.state_path.parent)
        except BaseException:
            os.close(fd)
            raise
        # The journal is the state now. Not before: a rotation that failed left the old state,
        # which has still to hear of the files that left.
        self._state_lines = len(self._done)
        self._gone.clear()
        self.close()
        self._csv_fd = fd
        self._state_fd = self._open_state()
        self._written_end = len(self._header)
        self.started = now
        log.info(
            "%s: started a new CSV; the rows so far are in %s (files still here with a row "
            "there: %d)",
            self.csv_path,
            archive.name,
            len(self._done),
        )
        return archive

    def _new_csv_path(self) -> Path:
        return self.csv_path.with_name(f".{self.csv_path.name}.new")

    def _resume_rotation(self) -> None:
        """Complete or undo a rotation that a crash interrupted (see :meth:`rotate`)."""
        try:
            with open(self.journal_path, "rb") as f:
                archive = self.csv_path.with_name(str(json.loads(f.readline())["previous"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise LedgerError(
                f"{self.journal_path} is not a rotation journal written by edgefer watch; move "
                "it away"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._new_csv_path())
        if not archive.exists():  # step 2 never happened: the old CSV and state still hold
            os.unlink(self.journal_path)
            log.warning("%s: undid a rotation that was interrupted", self.csv_path)
            return
        # The old CSV is under its new name, and this is the new one: opening it made it if the
        # crash came before step 3. It holds at most the header: rows come after step 4.
        size = self._csv_size()
        if size == 0:
            os.fchmod(self._csv_fd, archive.stat().st_mode & 0o7777)  # as step 3 would have
            _write_all(self._csv_fd, self._header)
            os.fsync(self._csv_fd)
        elif size != len(self._header):
            raise LedgerError(
                f"{self.journal_path}: a rotation was interrupted, and {self.csv_path} is not "
                f"the new CSV it was making ({counted(size, 'byte')}); move it away"
            )
        os.replace(self.journal_path, self.state_path)
        _fsync_dir(self.state_path.parent)
        log.warning(
            "%s: completed a rotation that was interrupted; the rows before it are in %s",
            self.csv_path,
            archive.name,
        )

    def forget(self, path: str) -> None:
        """Drop a file that left the folder (deleted, moved away, or moved to --done-dir); the
        state file hears of it with the next batch, or at :meth:`flush`."""
        if self._done.pop(path, None) is not None:
            self._gone.append(self._left_line(path))

    def forget_below(self, folder: str) -> int:
        """:meth:`forget` every file under ``folder`` (a folder that left: no event comes for
        the files in it); returns how many."""
        prefix = folder.rstrip(os.sep) + os.sep
        gone = [path for path in self._done if path.startswith(prefix)]
        for path in gone:
            self.forget(path)
        return len(gone)

    def prune(self) -> int:
        """Forget entries whose file no longer exists; returns how many."""
        gone = [path for path in self._done if not os.path.lexists(path)]
        for path in gone:
            self.forget(path)
        return len(gone)

    def _left_line(self, path: str) -> str:
        """The state line for a file forgotten: it ends its entry, which would otherwise take a
        file put back under its name (from done/, from a backup) while the daemon is stopped
        for the version classified before, and skip it. At the CSV's end as this daemon left
        it when the file left, so never past the state's ``E``, even when a failed write puts
        the line off until after the next batch's rows."""
        return json.dumps([self._written_end, *LEFT, path]) + "\n"

    def flush(self) -> None:
        """Write down, durably, which files left the folder since the last batch (after the
        moves to --done-dir; a crash before leaves their entries, as before the moves).

        Raises:
            OSError: the disk is full or failing; the lines go with the next write.
        """
        if self._gone and self._state_fd >= 0:
            self._append_state(self._gone[:], left=len(self._gone))

    def _append_state(self, lines: list[str], left: int = 0) -> None:
        """Append ``lines`` to the state file, durably, and count them; the first ``left`` are
        the lines of files that left, which :attr:`_gone` holds until then: after a failed
        write they go with the next (a batch's, :meth:`flush`, :meth:`close`'s), not nowhere.

        Raises:
            OSError: the disk is full or failing. The state is cut back to where it ended: half
                a line with whole ones after it reads as damage, and the restart would refuse
                the state; a line torn that cannot be cut off (EIO) takes no line after it.
        """
        if self._state_torn:
            raise OSError(
                errno.EIO,
                "half a line that a failed write left could not be cut off (the restart cuts it)",
                str(self.state_path),
            )
        start = os.fstat(self._state_fd).st_size
        try:
            _write_all(self._state_fd, "".join(lines).encode("ascii"))
            os.fsync(self._state_fd)
        except OSError:
            try:
                os.ftruncate(self._state_fd, start)
            except OSError:
                self._state_torn = True
            raise
        self._state_lines += len(lines)
        del self._gone[:left]

    def compact(self, slack: int | None = None) -> bool:
        """Rewrite the state file when it holds many more lines than live entries: on start,
        and after batches (each file moved to --done-dir leaves a dead line behind; a daemon
        that runs for a year must not restart through a year of them).

        A failure (a full disk) leaves the state as it was, with a warning; the next try comes
        ``slack`` (:data:`COMPACT_SLACK`) lines later."""
        slack = COMPACT_SLACK if slack is None else slack
        if self._state_lines <= max(2 * len(self._done) + slack, self._next_compact):
            return False
        before = self._state_lines
        try:
            self._replace_state("compacted")
        except CsvError as exc:
            self._next_compact = before + slack
            log.warning("%s: not compacted: %s", self.state_path, exc)
            return False
        self._next_compact = 0  # the back-off was for that failure, not for good
        log.info("%s: compacted %d entries to %d", self.state_path, before, len(self._done))
        return True

    def _replace_state(self, done: str) -> None:
        """:meth:`_write_state` in place of the state file open here, then go on appending to
        the new one. Where only the folder's fsync failed, after the rename, the new state is
        the one in place: a warning says ``done``, but, and the next lines go to it, not to the
        old file it replaced (whose lines a restart would never read).

        Raises:
            CsvError: the new state could not be put in place; the old one stays, open.
        """
        try:
            self._write_state()
        except CsvError as exc:
            if not self._state_replaced():
                raise
            log.warning("%s: %s, but %s", self.state_path, done, exc)
            self._state_lines = len(self._done)
        os.close(self._state_fd)  # the old file's: the new one is in its place
        self._state_fd = -1
        self._state_fd = self._open_state()

    def _state_replaced(self) -> bool:
        """Whether the state file's name now names another file than the one open here."""
        try:
            named, opened = os.stat(self.state_path), os.fstat(self._state_fd)
        except OSError:
            return False
        return (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino)

    def close(self) -> None:
        if self._gone and self._state_fd >= 0:
            with contextlib.suppress(OSError):  # as after a crash: their entries stay
                self.flush()
        for fd in (self._state_fd, self._csv_fd):
            if fd >= 0:
                os.close(fd)
        self._state_fd = self._csv_fd = -1

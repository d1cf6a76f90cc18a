"""The results CSV: ``path,label,confidence,<one column per label>,error``.

With ``time_column=True`` (``--time``), a ``time`` column follows ``path``: the image file's
modification time (for a camera, when the shot was saved) in local time with its UTC offset,
``2026-11-30T08:05:09+01:00``. With face detection (``faces=True``) each row is one face, and
``face,x,y,w,h,det_score`` come next: the face's number in its image, its box in pixels of the
EXIF-corrected image, and the detector's score. An image without a face has one row with
``error`` = ``no face``.

Written atomically (temp file in the same directory, fsync, rename), or appended to an existing
file whose header must match, skipping paths it already holds.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TextIO

from edgefer.pipeline import Result

#: A leading character that makes spreadsheets evaluate a cell as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class CsvError(Exception):
    """An output CSV that cannot be used (unwritable, or written by a model with other labels)."""


class ReaderGoneError(CsvError):
    """The reader of a streamed output closed it (``-o - | head``): a reason to stop quietly,
    as Unix tools do on SIGPIPE, not an error to report."""


def _write_error(output: str, exc: OSError) -> CsvError:
    if exc.errno == errno.EPIPE:
        return ReaderGoneError(f"{output}: the reader closed the pipe")
    return CsvError(f"cannot write {output}: {exc.strerror or exc}")


def neutralize(cell: str) -> str:
    """Prefix a quote to cells a spreadsheet would execute as a formula, and to cells that are
    quotes followed by one (a file named ``'=x.jpg``), so that :func:`unneutralize` tells them
    apart: ``=x`` -> ``'=x``, ``'=x`` -> ``''=x``, ``x`` and ``'x`` unchanged."""
    return "'" + cell if cell.lstrip("'").startswith(FORMULA_PREFIXES) else cell


def unneutralize(cell: str) -> str:
    """Undo :func:`neutralize` (``'=x`` -> ``=x``, ``''=x`` -> ``'=x``): a cell as it was."""
    quoted = cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_PREFIXES)
    return cell[1:] if quoted else cell


def path_key(cell: str) -> str:
    """What identifies the file of a CSV cell across spellings (``x.jpg``, ``./x.jpg``, its
    absolute path): the cell as it was before :func:`neutralize`, made absolute."""
    return _absolute(unneutralize(cell))


def absolute_paths(folder: str | None = None) -> Callable[[str], str]:
    """``os.path.abspath``, a relative path taken from ``folder`` (the current folder, given
    once, not asked per path as abspath() asks it; None: asked per path), at a third of its
    cost on an absolute path: its normpath (pure Python before 3.12) only for a path it
    may change. On a daemon's CSV of absolute paths, abspath() took three times the rest of
    ``summary``'s look for images in several CSVs."""
    here = None if folder is None else os.path.join(folder, "")
    # Bound here, not looked up per path: a quarter of the time on a path that needs no change.
    sep, dot, two, normpath = os.sep, os.sep + ".", os.sep * 2, os.path.normpath

    def absolute(path: str) -> str:
        if path[:1] != sep:
            path = (here or os.path.join(os.getcwd(), "")) + path
        # What normpath may change: /./, /../, //, a trailing separator; "/." finds "/.x"
        # too, normalised for nothing. Not empty: it starts with the separator.
        if dot in path or two in path or path[-1] == sep:
            return normpath(path)
        return path

    return absolute


_absolute = absolute_paths()


def as_utf8(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name (Python's surrogate escapes) as ``\\xNN``.

    Such names (Latin-1 from old cameras and SMB shares) otherwise cannot be written to a UTF-8
    CSV or terminal; ``edgefer watch`` writes them the same way.
    """
    try:  # the name's own bytes back, then the undecodable ones as \xNN
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decoded to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


#: For :func:`printable`: C0 and C1 control characters and DEL; the line and paragraph
#: separators (line ends to ``str.splitlines``: a journal line forged); the bidirectional
#: overrides and isolates, which reorder what a terminal shows.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS.update(
    {c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
)


def printable(text: str) -> str:
    """``text`` for a terminal or a log line: as :func:`as_utf8`, and control characters as
    ``\\xNN``. A file name is anyone's text (an upload to a watched folder): ESC ``[2J`` in
    one cleared the screen, a CR hid what came before it, a newline forged a log line."""
    return as_utf8(text).translate(_CONTROLS)


class _StdoutBytes(io.TextIOWrapper):
    """UTF-8 text onto stdout's bytes; closing it (or losing it) leaves stdout open."""

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.flush()


def _utf8_stdout() -> TextIO:
    """Standard output for the CSV, which is UTF-8 wherever it goes: ``sys.stdout``, or where
    that encodes otherwise (a Latin-1 locale, ``PYTHONIOENCODING=ascii``: the first name with
    an "ä" ended the run), a UTF-8 writer onto its bytes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    buffer = getattr(sys.stdout, "buffer", None)
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    if utf8 or buffer is None:
        return sys.stdout
    sys.stdout.flush()
    return _StdoutBytes(buffer, encoding="utf-8", newline="", write_through=True)


FACE_COLUMNS = ("face", "x", "y", "w", "h", "det_score")


def csv_header(
    labels: tuple[str, ...], faces: bool = False, time_column: bool = False
) -> list[str]:
    """The header row; label columns are neutralised like cells (a model's labels are data)."""
    columns = (neutralize(label) for label in labels)
    first = ["path", *(["time"] if time_column else []), *(FACE_COLUMNS if faces else ())]
    return [*first, "label", "confidence", *columns, "error"]


class Cells(NamedTuple):
    """One row of an edgefer CSV, by column: path, label and error as they were before
    :func:`neutralize`, the others as written."""

    path: str
    time: str  #: "" in a CSV without the ``time`` column
    face: tuple[str, ...]  #: the :data:`FACE_COLUMNS` cells; () in a CSV without them
    label: str
    confidence: str
    probabilities: tuple[str, ...]  #: one per label, in the header's order
    error: str


@dataclass(frozen=True)
class Layout:
    """What an edgefer CSV's header says: its labels, and which optional columns it has."""

    labels: tuple[str, ...]
    faces: bool
    time_column: bool

    @classmethod
    def of(cls, header: list[str] | None) -> Layout | None:
        """The layout of a header row as :func:`csv_header` writes it; None for any other row,
        or none (an empty file)."""
        cells = [unneutralize(cell) for cell in header or ()]
        if len(cells) < 5 or cells[0] != "path" or cells[-1] != "error":
            return None
        middle = cells[1:-1]
        time_column = middle[:1] == ["time"]
        middle = middle[time_column:]
        faces = tuple(middle[: len(FACE_COLUMNS)]) == FACE_COLUMNS
        middle = middle[len(FACE_COLUMNS) if faces else 0 :]
        if middle[:2] != ["label", "confidence"] or len(middle) < 3:
            return None
        layout = cls(tuple(middle[2:]), faces, time_column)
        return layout if csv_header(layout.labels, faces, time_column) == header else None

    def split(self, row: list[str]) -> Cells | None:
        """A row of a CSV with this header, by column (as :func:`csv_row` writes it); None for a
        row of another width: one still being written, or damaged."""
        width = 4 + self.time_column + len(FACE_COLUMNS) * self.faces + len(self.labels)
        if len(row) != width:
            return None
        cells = iter(row)
        path = unneutralize(next(cells))
        time = next(cells) if self.time_column else ""
        face = tuple(next(cells) for _ in FACE_COLUMNS) if self.faces else ()
        label, confidence, *probabilities, error = cells
        return Cells(
            path,
            time,
            face,
            unneutralize(label),
            confidence,
            tuple(probabilities),
            unneutralize(error),
        )


def file_time(mtime_ns: int) -> str:
    """A file's modification time as the ``time`` column gives it: ISO 8601, whole seconds,
    local time with its UTC offset (``2026-11-30T08:05:09+01:00``); empty for a time no
    calendar date takes (a corrupt mtime)."""
    try:
        return datetime.fromtimestamp(mtime_ns // 10**9).astimezone().isoformat()
    except (OverflowError, OSError, ValueError):
        return ""


def time_of(path: str) -> str:
    """The ``time`` cell of a file: :func:`file_time` of its mtime, empty if it cannot be read."""
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except (OSError, ValueError):  # gone, unreadable, or not a name the OS takes
        return ""
    return file_time(mtime_ns)


def csv_row(
    result: Result, n_labels: int, faces: bool = False, time: str | None = None
) -> list[str]:
    """One CSV row; probabilities with 6 decimals, empty cells for a failed file. ``time``: the
    ``time`` cell (None: the CSV has no such column)."""
    cells = [neutralize(as_utf8(result.path))]
    if time is not None:
        cells.append(time)
    if faces:
        if result.face is None or result.box is None:
            cells += [""] * len(FACE_COLUMNS)
        else:
            cells += [str(result.face), *map(str, result.box), f"{result.det_score:.4f}"]
    if result.probabilities is None:
        cells += ["", "", *([""] * n_labels)]
    else:
        cells += [
            neutralize(result.label or ""),
            f"{result.confidence:.6f}",
            *(f"{p:.6f}" for p in result.probabilities),
        ]
    return [*cells, neutralize(as_utf8(result.error or ""))]


def csv_line(cells: list[str]) -> str:
    """One CSV record as text, in :class:`CsvSink`'s dialect (``\\n`` line ends).

    A cell with a CR (a file name can hold one) is quoted: csv quotes only the line
    terminator's characters, and a bare CR ends the line for csv readers and spreadsheets
    (``summary`` saw two torn rows in one). Written with CRLF, so that csv quotes both, then
    ended with LF."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)
    return buf.getvalue()[:-2] + "\n"


def torn_row(cells: Cells | None, whole_characters: bool = True) -> bool:
    """Whether a last row without its line end was cut short (a crash, or a row still being
    written), rather than only missing the line end (a file saved by an editor): some bytes
    not whole characters, cells missing, or an error row (its message may be cut short)."""
    return not whole_characters or cells is None or bool(cells.error)


def _repair_tail(path: Path, layout: Layout, key: Callable[[str], str] = str) -> set[str]:
    """The paths (first cells, through ``key``) of the rows after the header; a last row
    without its line end is given one when it is whole (a file saved by an editor that drops
    the final newline) and cut off when a crash tore it (so that its file is classified again).

    Read as a stream, keeping the paths only: the whole file and its parsed rows in memory
    took 1.2 KB per row (345 MB for a CSV of 230,000 rows, to append three). The whole file is
    read and parsed before anything is changed.

    Raises:
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    with open(path, "rb") as raw:
        bom = len(codecs.BOM_UTF8) if raw.read(3) == codecs.BOM_UTF8 else 0
        size = raw.seek(0, os.SEEK_END)
        raw.seek(max(size - 1, 0))
        terminated = raw.read(1) == b"\n"
        raw.seek(bom)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        consumed = bom  # bytes of the lines handed to the reader so far
        whole_characters = True

        def lines():
            nonlocal consumed, whole_characters
            for line in text:  # split at \n, \r and \r\n, as the csv reader splits
                if line.isascii():  # most lines: a byte a character, no escapes
                    consumed += len(line)
                    yield line
                    continue
                consumed += len(line.encode("utf-8", "surrogateescape"))
                if has_surrogates(line):
                    if line.endswith(("\n", "\r")):  # not the unterminated tail: not UTF-8
                        raise UnicodeDecodeError("utf-8", b"", 0, 1, f"not UTF-8 text: {path}")
                    whole_characters = False  # torn inside a character
                yield line

        reader = csv.reader(lines())
        paths: set[str] = set()
        n_records = 0
        last: list[str] | None = None
        last_start = bom  # where the last record begins
        while True:
            begin = consumed  # the reader takes a record's lines as it needs them, no more
            record = next(reader, None)
            if record is None:
                break
            if last and n_records > 1:  # the record before, not the header
                paths.add(key(last[0]))
            n_records += 1
            last, last_start = record, begin
        text.detach()
    if last is None:
        return paths
    if not terminated:
        if (whole_characters and n_records == 1) or not torn_row(
            layout.split(last), whole_characters
        ):
            with open(path, "ab") as f:  # whole: only its line end is missing
                f.write(b"\n")
        else:  # torn (an error row counts as torn: its message may be cut short)
            os.truncate(path, last_start)
            return paths
    if last and n_records > 1:
        paths.add(key(last[0]))
    return paths


#: A byte that was not UTF-8, decoded with surrogateescape.
_SURROGATE = re.compile("[\udc80-\udcff]")


def has_surrogates(text: str) -> bool:
    """Whether ``text``, read with ``surrogateescape``, held bytes that are not UTF-8."""
    return _SURROGATE.search(text) is not None


def _check_same_file(output: str, fd: int) -> None:
    """Raise if the file appended to is no longer at ``output`` (deleted or replaced during
    the run: the rows went with it, and the run ended with exit 0)."""
    try:
        there = os.stat(os.path.realpath(output))
    except FileNotFoundError:
        there = None
    if there is None or not os.path.samestat(there, os.fstat(fd)):
        raise FileNotFoundError(
            errno.ENOENT, "it was deleted or replaced during the run; its rows went with it"
        )


def names_missing_folder(output: str) -> bool:
    """Whether an output given as ``dir/`` names a folder that is not there (``Path`` drops the
    slash, and the file ``dir`` would be written instead)."""
    return output.endswith(("/", os.sep)) and not os.path.isdir(output)


def _names_stdout(output: str) -> bool:
    """Whether ``output`` is this process's standard output under a name (``/dev/stdout``,
    ``/dev/fd/1``, the very file it was redirected to)."""
    try:
        return os.path.samestat(os.stat(output), os.fstat(sys.stdout.fileno()))
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False  # no such file, or no stdout with a descriptor (closed, a test's buffer)


#: Rows are read back (``--append``, watch adoption) however long a cell a user's file holds.
csv.field_size_limit(2**31 - 1)


def open_csv(path: Path):
    """An edgefer CSV opened for reading. utf-8-sig: a CSV saved by a spreadsheet as "CSV UTF-8"
    starts with a byte-order mark."""
    return open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115


def read_existing(
    path: Path,
    labels: tuple[str, ...],
    faces: bool = False,
    time_column: bool = False,
    repair: bool = True,
    key: Callable[[str], str] = str,
) -> set[str]:
    """Paths (as written in the CSV, through ``key``) already present in ``path``; repairs a
    torn last line (``repair=False``: reads the file as it is, e.g. a CSV rotated out, not
    ours to change).

    The header is checked before anything is changed: a file that is not this model's CSV is
    refused as it is.

    Raises:
        CsvError: the file's header differs from this model's columns.
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    if not check_header(path, labels, faces, time_column):
        return set()
    if repair:
        return _repair_tail(path, Layout(labels, faces, time_column), key)
    with open_csv(path) as f:
        reader = csv.reader(f)
        next(reader, None)
        return {key(row[0]) for row in reader if row}


def _check_header(
    header: list[str] | None,
    path: Path,
    labels: tuple[str, ...],
    faces: bool = False,
    time_column: bool = False,
) -> bool:
    if header is None:
        return False
    layout = Layout.of(header)
    if layout == Layout(labels, faces, time_column):
        return True
    if layout is None:
        raise CsvError(f"{path} is not a CSV written by edgefer; use a new output file")
    if layout.labels != labels:
        raise CsvError(
            f"{path} was written for other labels ({', '.join(layout.labels)}); "
            "use a new output file for this model"
        )
    modes = []
    if layout.faces != faces:
        modes.append(f"{'with' if layout.faces else 'without'} face detection (--faces)")
    if layout.time_column != time_column:
        modes.append(f"{'with' if layout.time_column else 'without'} a time column (--time)")
    raise CsvError(
        f"{path} was written {' and '.join(modes)}; use a new output file or the same options"
    )


def _has_header(path: Path) -> bool:
    """Whether ``path`` holds a first row (a byte-order mark alone is none)."""
    with open_csv(path) as f:
        return next(csv.reader(f), None) is not None


def check_header(
    path: Path, labels: tuple[str, ...], faces: bool = False, time_column: bool = False
) -> bool:
    """Whether ``path`` starts with a header row (False: empty file); reads only that row.

    Raises:
        CsvError: the header differs from this model's columns.
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    with open_csv(path) as f:
        return _check_header(next(csv.reader(f), None), path, labels, faces, time_column)


def _refuse_watch_csv(target: Path, real: Path, append: bool) -> None:
    """Raise CsvError if ``real`` (an existing file) is an ``edgefer watch`` CSV: its state
    file is beside it."""
    from edgefer.ledger import STATE_SUFFIX  # here: ledger imports this module

    state = real.with_name(real.name + STATE_SUFFIX)
    if not state.exists():
        return
    if append:
        # The state vouches for the daemon's rows only: at its next start it cuts the rest off
        # as an unfinished batch, and files not in its folder never come back.
        harm = "the daemon would drop rows appended to it"
        instead = "write another CSV (edgefer summary reads both)"
    else:
        # The daemon stops (exit 1) at the replaced CSV, then refuses it at each restart
        # (exit 2): the service stays down, and its rows are gone.
        harm = "replacing it would lose the daemon's rows and keep it from starting"
        instead = "write another CSV, or stop the daemon and move both files away first"
    raise CsvError(f"{target} is an edgefer watch CSV ({state.name} beside it): {harm}; {instead}")


class CsvSink:
    """Where result rows go: a file (atomic or append), stdout (``"-"``), or a stream.

    A new file is written beside its target and renamed into place when the block ends without
    an exception (through a symlink, to the file it names; with the mode of the file it
    replaces). An existing FIFO, device or ``/dev/fd/N`` (``-o >(gzip > x.gz)``) is written to
    as it goes, like stdout. Use as a context manager.
    """

    def __init__(
        self,
        output: str,
        labels: tuple[str, ...],
        append: bool = False,
        faces: bool = False,
        time_column: bool = False,
    ) -> None:
        """``time_column``: write the ``time`` column (each file's mtime, read as its row is
        written).

        Raises CsvError: the output is a directory or not writable, or an appended file is not
        this model's CSV (other labels, the other ``faces`` or ``time_column`` mode, not UTF-8
        text)."""
        self.labels = labels
        self.faces = faces
        self.time_column = time_column
        #: With ``append``: the files the CSV has rows for, by :meth:`_key`.
        self._seen_keys: set[str] = set()
        #: :meth:`_key`'s folders, symlinks resolved and ending in a separator, by their paths.
        self._real_folders: dict[str, str] = {}
        #: The current folder, ending in a separator (:meth:`named_from_elsewhere`).
        self._here: str | None = None
        #: With ``append``: a relative path of the CSV's that is not found from the current
        #: directory, when none of them is (a cron job in / appending to a CSV written in the
        #: photos' parent folder adds every row again); None when they resolve.
        self.unresolved: str | None = None
        self._output = output
        self._target: Path | None = None  # the file renamed into place at the end
        self._tmp: str | None = None
        #: The output's folder, held open from the start: the temp file is renamed and removed
        #: in it, not by a path that a folder moved or removed during the run has changed.
        self._dir_fd: int | None = None
        #: With ``append`` to a file: a CSV replaced or deleted meanwhile lost the rows.
        self._appended = False
        self._mode = 0o644
        #: The rows go to standard output: ``-``, or a name for it (``-o /dev/stdout``, which
        #: written as a file would replace a ``>> all.csv`` by rename, or share a pipe with the
        #: summary).
        self.to_stdout = output == "-" or _names_stdout(output)
        self._owned = not self.to_stdout  # closed by close(); sys.stdout is not
        self._durable = False  # fsync at the end (regular files only)
        self._closed = False
        self._stream: TextIO
        needs_header = True
        if self.to_stdout:
            if sys.stdout is None:  # started with its stdout closed (`>&-`)
                raise CsvError(f"cannot write {output}: standard output is closed")
            self._stream = _utf8_stdout()
            needs_header = not append  # `-o - --append >> labels.csv`: rows only
        elif names_missing_folder(output):
            raise CsvError(f"output directory does not exist: {output}")
        else:
            try:
                needs_header = self._open_file(Path(output), append)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise CsvError(f"{output} is not a CSV written by edgefer") from exc
            except OSError as exc:
                raise _write_error(output, exc) from exc
        if needs_header:
            try:
                self._stream.write(csv_line(csv_header(labels, faces, time_column)))
            except OSError as exc:  # a stream whose reader has gone, a full disk
                self.close(commit=False)
                raise _write_error(output, exc) from exc

    def _open_file(self, target: Path, append: bool) -> bool:
        """Open the output; returns whether it needs a header row."""
        try:
            st: os.stat_result | None = target.stat()
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise CsvError(f"output is a directory, not a file: {target}")
        if st is not None and not stat.S_ISREG(st.st_mode):
            # A FIFO, a device, /dev/stdout, a process substitution: written as a stream.
            self._stream = open(target, "a" if append else "w", newline="", encoding="utf-8")  # noqa: SIM115
            return not append
        real = Path(os.path.realpath(target))  # a symlinked CSV stays a symlink
        if not real.parent.is_dir():
            raise CsvError(f"output directory does not exist: {target.parent}")
        self._durable = True
        if st is not None:
            _refuse_watch_csv(target, real, append)
        if append:  # into the file as they come (a new one too): an interrupted run keeps them
            if st is not None:
                relative: list[str] = []  # a few of them, to see whether they resolve here

                def key(cell: str) -> str:
                    if len(relative) < 20 and not os.path.isabs(plain := unneutralize(cell)):
                        relative.append(plain)
                    return self._key(path_key(cell))

                self._seen_keys = read_existing(
                    real, self.labels, self.faces, self.time_column, key=key
                )
                # Their folders, not the files: files may have been deleted since.
                if relative and not any(os.path.isdir(os.path.dirname(x) or ".") for x in relative):
                    self.unresolved = relative[0]
            self._stream = open(real, "a", newline="", encoding="utf-8")  # noqa: SIM115
            self._appended = True
            size = os.fstat(self._stream.fileno()).st_size
            # A file of a byte-order mark alone (an empty CSV saved as UTF-8 by Notepad or
            # PowerShell) has no header either: its rows went in without one.
            return size == 0 or (size == len(codecs.BOM_UTF8) and not _has_header(real))
        if not os.access(real.parent, os.W_OK | os.X_OK):
            read_only = os.statvfs(real.parent).f_flag & os.ST_RDONLY  # say so, not "denied"
            code = errno.EROFS if read_only else errno.EACCES
            raise PermissionError(code, os.strerror(code), str(real.parent))
        umask = os.umask(0)
        os.umask(umask)
        # The file replaced keeps its mode (a private 0600 CSV stays private); a new one gets
        # what a plain open() would give it.
        self._mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~umask
        fd, self._tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
        self._target = real
        try:
            # O_PATH: a folder one may write to but not list (-wx, a drop box) opens too.
            flags = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY
            self._dir_fd = os.open(real.parent, flags)
        except OSError:
            os.close(fd)
            os.unlink(self._tmp)
            raise
        self._stream = open(fd, "w", newline="", encoding="utf-8")  # noqa: SIM115
        return True

    @property
    def keeps_partial(self) -> bool:
        """Whether the rows written so far stay if the run ends early (stdout, a stream,
        ``append``); a new file appears only when the run ends well."""
        return self._tmp is None

    def seen(self, path: str) -> bool:
        """Whether ``path`` already has a row (append mode), under this or another spelling
        (relative or absolute, resolved against the current directory)."""
        # ``path`` is a name, not a cell: not unneutralized (``'=x.jpg`` is not ``=x.jpg``).
        return self._key(os.path.abspath(as_utf8(path))) in self._seen_keys

    def _key(self, path: str) -> str:
        """An absolute path with its folder's symlinks resolved: ``~/photos/x.jpg`` and, from
        ``cd ~/photos``, ``./x.jpg`` are one file when ``~/photos`` is a link (the current
        folder is the link's target); a file that is itself a link stays a name of its own.
        Resolved once per folder, not per row."""
        folder, _, name = path.rpartition(os.sep)  # not os.path.split: a third of the time
        prefix = self._real_folders.get(folder)
        if prefix is None:
            prefix = os.path.join(os.path.realpath(folder or os.sep), "")
            self._real_folders[folder] = prefix
        return prefix + name

    def named_from_elsewhere(self, path: str) -> str | None:
        """With ``append``: the relative spelling under which the CSV seems to hold ``path``
        (not :meth:`seen`), written from another folder: a tail of ``path`` (``x.jpg``,
        ``photos/x.jpg``) that names, from here, a row whose file is not here. None if none.

        A CSV of names in its own folder (``./x.jpg``) gave no warning when appended to from
        elsewhere: the folder of a name is ``.`` wherever one runs, so :attr:`unresolved`,
        which checks the rows' folders, found it."""
        if not self._seen_keys:
            return None
        if self._here is None:  # once, not per file: the run does not change folder
            self._here = os.path.join(os.getcwd(), "")
        here = self._here
        full = os.path.abspath(as_utf8(path))
        cut = full.rfind(os.sep)
        while cut > 0:  # x.jpg, photos/x.jpg, ..., all but the whole path
            tail = full[cut + 1 :]
            key = here + tail  # its folder's links not resolved: a hint, and 2.5x as fast
            if key in self._seen_keys and not os.path.lexists(key):
                return tail
            cut = full.rfind(os.sep, 0, cut)
        return None

    def write(self, result: Result) -> None:
        """One row: :meth:`write_image` of one result.

        Raises CsvError: the output cannot be written (disk full, I/O error)."""
        self.write_image([result])

    def write_image(self, results: list[Result]) -> None:
        """All rows of one image (one per face with ``faces``), then, when appending, a flush:
        a crash then leaves whole images in the file, which ``--append`` can skip, never an
        image with some of its faces (a buffer flushed mid-image did).

        Raises CsvError: as :meth:`write`."""
        # One write of all the image's rows (then one write(2) to the file when flushed).
        when = self._time(results[0].path) if results else None
        text = "".join(csv_line(self._row(r, when)) for r in results)
        try:
            self._stream.write(text)
            if self._tmp is None:  # a new file appears whole at the end anyway
                self._stream.flush()
        except OSError as exc:
            raise _write_error(self._output, exc) from exc

    def _time(self, path: str) -> str | None:
        return time_of(path) if self.time_column else None

    def _row(self, result: Result, when: str | None) -> list[str]:
        return csv_row(result, len(self.labels), self.faces, when)

    def close(self, commit: bool = True) -> None:
        """Finish the output: fsync and rename into place, or discard the temp file.

        Raises:
            CsvError: (``commit`` only) the rows could not all be written; no temp file is left.
        """
        if self._closed:
            if not commit and self._tmp is not None:  # a clean-up cut short by a second signal
                with contextlib.suppress(OSError):
                    os.unlink(self._tmp)
            return
        self._closed = True
        error: OSError | None = None
        flushed = False
        try:
            try:
                self._stream.flush()
                if commit and self._tmp is not None:
                    os.fchmod(self._stream.fileno(), self._mode)
                if commit and self._durable:
                    os.fsync(self._stream.fileno())
                if commit and self._appended:
                    _check_same_file(self._output, self._stream.fileno())
            except OSError as exc:
                error = exc
            flushed = True
        finally:  # a second Ctrl-C during the flush still removes the temp file
            if self._owned:
                try:
                    self._stream.close()
                except OSError as exc:
                    error = error or exc
            if self._tmp is not None:
                error = self._finish_temp(commit and flushed and error is None) or error
        if commit and error is not None:
            raise _write_error(self._output, error) from error

    def _finish_temp(self, commit: bool) -> OSError | None:
        """Rename the temp file into place (``commit``) or remove it, in the folder it was
        made in (one moved or removed meanwhile left a traceback, and the temp file in the
        moved folder). Returns why it could not be put in place; ``_tmp`` is None if it was."""
        assert self._tmp is not None and self._target is not None and self._dir_fd is not None
        name, target = os.path.basename(self._tmp), self._target
        error: OSError | None = None
        try:
            if commit:
                try:
                    here = os.stat(target.parent)
                except FileNotFoundError:
                    here = None
                if here is None or not os.path.samestat(here, os.fstat(self._dir_fd)):
                    reason = "its folder was moved or removed during the run"
                    raise FileNotFoundError(errno.ENOENT, reason)
                # e.g. a directory created at that name during the run: an OSError
                os.replace(name, target.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
                self._tmp = None
        except OSError as exc:
            error = exc
        finally:
            if self._tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = None
        return error

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(commit=exc_type is None)

"""The results CSV: ``path,label,confidence,<one column per label>,error``.

With face detection (``faces=True``) each row is one face, and ``face,x,y,w,h,det_score``
follow ``path``: the face's number in its image, its box in pixels of the EXIF-corrected image,
and the detector's score. An image without a face has one row with ``error`` = ``no face``.

Written atomically (temp file in the same directory, fsync, rename), or appended to an existing
file whose header must match, skipping paths it already holds.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TextIO

from edgefer.pipeline import Result

#: A leading character that makes spreadsheets evaluate a cell as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class CsvError(Exception):
    """An output CSV that cannot be used (unwritable, or written by a model with other labels)."""


def neutralize(cell: str) -> str:
    """Prefix a quote to cells a spreadsheet would execute as a formula."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def as_utf8(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name (Python's surrogate escapes) as ``\\xNN``.

    Such names (Latin-1 from old cameras and SMB shares) otherwise cannot be written to a UTF-8
    CSV or terminal; ``edgefer watch`` writes them the same way.
    """
    try:  # the name's own bytes back, then the undecodable ones as \xNN
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decoded to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


FACE_COLUMNS = ("face", "x", "y", "w", "h", "det_score")


def csv_header(labels: tuple[str, ...], faces: bool = False) -> list[str]:
    return ["path", *(FACE_COLUMNS if faces else ()), "label", "confidence", *labels, "error"]


def csv_row(result: Result, n_labels: int, faces: bool = False) -> list[str]:
    """One CSV row; probabilities with 6 decimals, empty cells for a failed file."""
    cells = [neutralize(as_utf8(result.path))]
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
    """One CSV record as text, in :class:`CsvSink`'s dialect (``\\n`` line ends)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def _repair_torn_tail(path: Path) -> None:
    """Drop a last line cut short by a crash, so the file it describes is classified again."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        block = min(size, 1 << 16)
        while True:
            f.seek(size - block)
            tail = f.read(block)
            cut = tail.rfind(b"\n")
            if cut >= 0 or block == size:
                f.truncate(size - block + cut + 1 if cut >= 0 else 0)
                return
            block = min(size, block * 2)


def read_existing(path: Path, labels: tuple[str, ...], faces: bool = False) -> set[str]:
    """Paths (as written in the CSV) already present in ``path``; repairs a torn last line.

    Raises:
        CsvError: the file's header differs from this model's columns.
    """
    _repair_torn_tail(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        if not _check_header(next(reader, None), path, labels, faces):
            return set()
        return {row[0] for row in reader if row}


def _check_header(
    header: list[str] | None, path: Path, labels: tuple[str, ...], faces: bool = False
) -> bool:
    if header is None or header == csv_header(labels, faces):
        return header is not None
    if header == csv_header(labels, not faces):
        with_faces = "with" if not faces else "without"
        raise CsvError(
            f"{path} was written {with_faces} face detection (--faces); "
            "use a new output file or the same mode"
        )
    first = header.index("confidence") + 1 if "confidence" in header else 1
    raise CsvError(
        f"{path} was written for other labels ({', '.join(header[first:-1])}); "
        "use a new output file for this model"
    )


def check_header(path: Path, labels: tuple[str, ...], faces: bool = False) -> bool:
    """Whether ``path`` starts with a header row (False: empty file); reads only that row.

    Raises:
        CsvError: the header differs from this model's columns.
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    with open(path, newline="", encoding="utf-8") as f:
        return _check_header(next(csv.reader(f), None), path, labels, faces)


class CsvSink:
    """Where result rows go: a file (atomic or append) or stdout (``"-"``).

    Use as a context manager: the file appears (or is appended to) only when the block ends
    without an exception.
    """

    def __init__(
        self, output: str, labels: tuple[str, ...], append: bool = False, faces: bool = False
    ) -> None:
        """Raises CsvError: the directory is not writable, or an appended file has other labels
        (or was written in the other ``faces`` mode)."""
        self.labels = labels
        self.faces = faces
        self.existing: set[str] = set()
        self._target: Path | None = None
        self._tmp: str | None = None
        self._stream: TextIO
        needs_header = True
        if output == "-":
            self._stream = sys.stdout
        else:
            self._target = Path(output)
            directory = self._target.parent
            if not directory.is_dir():
                raise CsvError(f"output directory does not exist: {directory}")
            if self._target.is_dir():
                # Found now, not at the final rename after the whole run.
                raise CsvError(f"output is a directory, not a file: {output}")
            try:
                if append and self._target.exists():
                    self.existing = read_existing(self._target, labels, faces)
                    needs_header = self._target.stat().st_size == 0
                    self._stream = open(self._target, "a", newline="", encoding="utf-8")  # noqa: SIM115
                else:
                    fd, self._tmp = tempfile.mkstemp(
                        dir=directory, prefix=f".{self._target.name}.", suffix=".tmp"
                    )
                    self._stream = open(fd, "w", newline="", encoding="utf-8")  # noqa: SIM115
            except (PermissionError, IsADirectoryError) as exc:
                raise CsvError(f"cannot write {output}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise CsvError(f"{output} is not a CSV written by edgefer") from exc
        self._writer = csv.writer(self._stream, lineterminator="\n")
        if needs_header:
            self._writer.writerow(csv_header(labels, faces))

    def seen(self, path: str) -> bool:
        """Whether ``path`` already has a row (append mode)."""
        return neutralize(as_utf8(path)) in self.existing

    def write(self, result: Result) -> None:
        self._writer.writerow(csv_row(result, len(self.labels), self.faces))
        if self._target is None:
            self._stream.flush()  # a pipe reader sees rows as they come

    def close(self, commit: bool = True) -> None:
        """Finish the file: fsync and rename into place, or discard the temp file."""
        if self._target is None:
            self._stream.flush()
            return
        try:
            self._stream.flush()
            if commit:
                os.fsync(self._stream.fileno())
        finally:
            self._stream.close()
        if self._tmp is None:
            return
        if not commit:
            os.unlink(self._tmp)
            return
        # mkstemp creates 0600; give the result the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        try:
            os.replace(self._tmp, self._target)
        except OSError as exc:  # e.g. a directory created at that name during the run
            os.unlink(self._tmp)
            raise CsvError(f"cannot write {self._target}: {exc.strerror}") from exc

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(commit=exc_type is None)

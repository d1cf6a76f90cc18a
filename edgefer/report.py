"""``edgefer summary``: the totals of CSVs that ``classify`` or ``watch`` wrote, and, with a
``time`` column, per hour, day, week or month.

A watch daemon writes rows for months and says nothing in the terminal; this reads its CSV (and
the ones ``--rotate`` put aside) back into the summary ``classify`` prints after a run. A CSV the
daemon is appending to may end in a row still being written: rows without every column are
left out and counted.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from edgefer.csvout import Cells, CsvError, Layout, has_surrogates, printable, torn_row
from edgefer.photos import NO_FACE
from edgefer.pipeline import Result
from edgefer.repeats import Repeats
from edgefer.rotation import Rotation
from edgefer.summary import Summary

PERIODS = ("hour", "day", "week", "month")


#: The period of a row without a time (a CSV written without --time, or an unreadable file).
NO_TIME = "no time"


def _instant(cell: str) -> datetime | None:
    """A ``time`` cell as an aware datetime (one without an offset, as edited by hand, is in
    this machine's local time); None if it is not an ISO 8601 time."""
    try:
        at = datetime.fromisoformat(cell)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.astimezone()


def period_of(cell: str, by: str) -> str:
    """The ``by`` period (a key of :data:`PERIODS`) of a ``time`` cell, in that cell's own local
    time: ``2026-11-30T08`` (hour), ``2026-11-30``, ``2026-W49``, ``2026-11``. Any ISO 8601
    time counts (``2026-11-30 08:05``, as a spreadsheet saves it, too); else :data:`NO_TIME`."""
    try:
        at = datetime.fromisoformat(cell)  # as written: its own offset, not converted
    except ValueError:
        return NO_TIME
    if by == "hour":
        return at.strftime("%Y-%m-%dT%H")
    if by == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return at.strftime("%Y-%m") if by == "month" else at.strftime("%Y-%m-%d")


def _rotation_set(path: str | os.PathLike) -> tuple[str, str]:
    """What a daemon's CSV and those ``--rotate`` put aside beside it (``labels.csv``,
    ``labels.2026-11.csv``) share, and no other CSV: its folder and its live CSV's name."""
    live = Rotation.rotated_from(Path(os.path.abspath(path)))
    return os.path.realpath(live.parent), live.name


class _Upto(io.RawIOBase):
    """A binary file's first ``limit`` bytes (None: all of it), and the last byte read."""

    def __init__(self, file: io.RawIOBase, limit: int | None) -> None:
        self._file, self._left, self.last = file, limit, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = len(buffer) if self._left is None else min(len(buffer), self._left)
        data = self._file.read(n) if n else b""
        buffer[: len(data)] = data
        if data:
            self.last = data[-1:]
            if self._left is not None:
                self._left -= len(data)
        return len(data)


@dataclass
class Report:
    """Rows of one or more CSVs with the same labels and face mode, tallied; the first CSV
    read sets them."""

    low_confidence: float = 0.5
    by: str | None = None
    layout: Layout | None = None
    summary: Summary | None = None
    per_period: defaultdict = field(default_factory=lambda: defaultdict(Counter))
    incomplete: int = 0
    #: The earliest and latest ``time`` cells, as written (compared as instants, not strings:
    #: after a clock change, or across CSVs from two time zones, the text order is wrong).
    first: str = ""
    last: str = ""
    _first_at: datetime | None = None
    _last_at: datetime | None = None
    #: Whether any CSV read has a time column (the first may not: one from before --time).
    timed: bool = False
    _read_ids: set = field(default_factory=set)
    #: The CSVs read, as named in messages (``-``: "standard input"), in the order read.
    names: list = field(default_factory=list)
    #: Which images have more than one row (every row is counted: see :meth:`in_several`).
    repeats: Repeats = field(default_factory=Repeats)

    def read(self, path: str | os.PathLike, name: str | None = None) -> None:
        """Add the rows of one CSV (once: the same file given twice, ``labels.csv`` beside
        ``labels*.csv``, is read once); ``name`` is what messages call it (default: ``path``).

        A last row without its line end is a row being written (or torn by a crash): it is
        left out and counted as incomplete unless it is a whole classified row. Bytes that
        are not UTF-8 (a row torn inside a character, a hand-edited name) do not stop the
        reading.

        Raises:
            CsvError: not an edgefer CSV, or one of other labels or face mode than the first.
            OSError, csv.Error: the file cannot be read as CSV text.
        """
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in self._read_ids:
            return
        self._read_ids.add((st.st_dev, st.st_ino))
        name = str(path) if name is None else name
        # Streamed, a few KiB at a time: a daemon's CSV of a million rows is 100 MB or more.
        # The file as it was when stat'ed (a daemon may append meanwhile): whether its last
        # line is whole is told from the very bytes that are parsed. (A pipe: all of it.)
        with open(path, "rb", buffering=0) as file:
            raw = _Upto(file, st.st_size if stat.S_ISREG(st.st_mode) else None)
            f = io.TextIOWrapper(
                io.BufferedReader(raw), encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
            reader = csv.reader(f)
            header = next(reader, None)
            layout = Layout.of(header)
            if layout is None:
                raise CsvError(f"{name} is not a CSV written by edgefer")
            if self.layout is None:
                self.layout = layout
                self.summary = Summary(layout.labels, self.low_confidence, faces=layout.faces)
            elif layout.labels != self.layout.labels:
                raise CsvError(
                    f"{name} is for other labels ({', '.join(layout.labels)}) than {self.names[0]}"
                )
            elif layout.faces != self.layout.faces:
                mode = "with" if layout.faces else "without"
                raise CsvError(
                    f"{name} was written {mode} face detection (--faces), unlike "
                    f"{self.names[0]}: summarise the two kinds apart"
                )
            self.names.append(name)
            self.timed = self.timed or layout.time_column
            previous = None
            for row in reader:
                if previous is not None:
                    self._add_row(layout, previous)
                previous = row
            unterminated = raw.last not in (b"", b"\n")
            if previous is not None:
                whole = not any(has_surrogates(cell) for cell in previous)
                if unterminated and torn_row(layout.split(previous), whole):
                    self.incomplete += 1  # its error message, say, may be cut short
                else:
                    self._add_row(layout, previous)
        self.repeats.end_csv(_rotation_set(path) if stat.S_ISREG(st.st_mode) else None)

    def _add_row(self, layout: Layout, row: list[str]) -> None:
        cells = layout.split(row)
        if cells is None or (not cells.error and cells.label not in layout.labels):
            self.incomplete += bool(row)  # a row still being written, or damaged
            return
        self._add(cells)

    def _add(self, cells: Cells) -> None:
        path, when, label, error = cells.path, cells.time, cells.label, cells.error
        face = int(cells.face[0]) if cells.face and cells.face[0].isdigit() else None
        if error:
            result = Result(path, error=error, face=face)
        else:
            try:
                confidence = float(cells.confidence)
            except ValueError:
                confidence = -1.0
            if not 0.0 <= confidence <= 1.0:  # nan, or a damaged cell
                self.incomplete += 1
                return
            result = Result(path, label, confidence, face=face)
        self.summary.add(result)
        if face in (None, 1):  # an image's row, or its first face's
            self.repeats.add(path)
        at = _instant(when) if when else None
        if at is not None:
            if self._first_at is None or at < self._first_at:
                self.first, self._first_at = when, at
            if self._last_at is None or at > self._last_at:
                self.last, self._last_at = when, at
        if self.by is not None and error != NO_FACE:
            self.per_period[period_of(when, self.by)][label if not error else None] += 1

    def render(self) -> Group:
        parts: list = [self.summary.render()]
        if self.by is not None:
            parts.append(self._period_table())
        files = len(self.names)
        line = f"{files} CSV{'s' if files != 1 else ''}"
        if self.first:
            line += f", images saved from {self.first} to {self.last}"
        if self.incomplete:
            plural = "s" if self.incomplete != 1 else ""
            line += f"; {self.incomplete} incomplete row{plural} left out"
        if within := self.repeats.within:  # a file a daemon classified again: no warning
            plural = "s" if within != 1 else ""
            where = "the same CSV"
            if self.repeats.sets_of_several():
                where += " or one rotated out of it"
            line += f"; {within} image{plural} classified again in {where}, each time counted"
        parts.append(Text(printable(line)))
        return Group(*parts)

    def in_several(self) -> tuple[int, list[str]]:
        """How many images have rows in more than one of the CSVs read (all counted, as
        every row is), and the names of those CSVs."""
        images, csvs = self.repeats.across()
        return images, [self.names[i] for i in csvs]

    def in_several_by_relative_path(self) -> bool:
        """Whether those CSVs have relative paths: an image of :meth:`in_several` may then be
        a relative path that names two images, one in each folder a CSV was written in."""
        return self.repeats.relative_across()

    def min_width(self, console: Console) -> int:
        """Columns the summary needs so that no count in its period table is cut ("12…"): the
        table's own width; 0 without ``by``."""
        if self.by is None:
            return 0
        wide = console.options.update_width(10_000)
        return console.measure(self._period_table(), options=wide).maximum

    def _period_table(self) -> Table:
        # No vertical rules or edge: a day, seven labels and "failed" fit in 80 columns.
        table = Table(
            title=f"per {self.by}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            collapse_padding=True,
            pad_edge=False,
        )
        table.add_column(self.by, no_wrap=True)
        for label in self.layout.labels:
            table.add_column(Text(printable(label)), justify="right")
        table.add_column("failed", justify="right")
        for period in sorted(self.per_period, key=lambda p: (p == NO_TIME, p)):
            counts = self.per_period[period]
            cells = [str(counts[label]) for label in self.layout.labels]
            table.add_row(period, *cells, str(counts[None]))
        return table

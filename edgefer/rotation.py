"""``edgefer watch --rotate``: when the daemon starts a new CSV, and what the old one is called.

A daemon left running for months should not grow one CSV without end. With ``--rotate monthly``
(or ``daily``, ``weekly``, or a size such as ``50M``) the ledger starts a new CSV before the first
batch that falls into a new calendar period (local time), or once the CSV has reached the size;
the old one keeps its rows under a dated name beside it (``labels.2026-11.csv``). How that is done
without losing or repeating a row across a crash is :meth:`edgefer.ledger.Ledger.rotate`'s part.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

#: strftime formats of the calendar periods. Their strings sort as their periods do, so a clock
#: set back (a Pi without a real-time clock, before NTP) never starts a new CSV.
PERIODS = {"daily": "%Y-%m-%d", "weekly": "%G-W%V", "monthly": "%Y-%m"}
#: A CSV rotated by size is named after the moment it was started.
STARTED = "%Y-%m-%dT%H%M%S"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)
#: What :meth:`Rotation.archive_path` adds to a name, under any policy: a period (PERIODS) or
#: a start (STARTED).
_TAG = r"\d{4}-(?:W\d{2}|\d{2}(?:-\d{2}(?:T\d{6})?)?)"
#: A name as :meth:`Rotation.archive_path` gives it: the CSV's stem, the tag, a number if the
#: name was taken, the CSV's suffix.
_ARCHIVED = re.compile(rf"(?P<stem>.+)\.{_TAG}(?:\.\d+)?(?P<suffix>(?:\.[^.]*)?)")

HELP = (
    "Start a new CSV each day, week or month (daily, weekly, monthly: local time) or once it "
    "reaches a size (50M; K, M, G: powers of 1024). The old one stays beside it, its period "
    "or start date added to its name."
)


@dataclass(frozen=True)
class Rotation:
    """A rotation policy: exactly one of ``period`` (a key of :data:`PERIODS`) or ``max_bytes``."""

    period: str | None = None
    max_bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rotation:
        """``daily``, ``weekly``, ``monthly`` or a size (``1048576``, ``500K``, ``50M``, ``1G``).

        Raises:
            ValueError: anything else, or a size of 0.
        """
        word = text.strip().lower()
        if word in PERIODS:
            return cls(period=word)
        match = _SIZE.fullmatch(word)
        if match is None:
            raise ValueError(
                f"--rotate {text!r}: expected daily, weekly, monthly or a size such as 50M"
            )
        size = int(match.group(1)) * _UNITS[match.group(2).upper()]
        if size <= 0:
            raise ValueError(f"--rotate {text!r}: the size must be more than 0")
        return cls(max_bytes=size)

    def due(self, started: float, now: float, csv_bytes: int, header_bytes: int) -> bool:
        """Whether a CSV started at ``started`` (seconds since the epoch) that holds
        ``csv_bytes`` should be put aside before rows written at ``now`` go in. A CSV holding only
        its header is never rotated."""
        if csv_bytes <= header_bytes:
            return False
        if self.max_bytes is not None:
            return csv_bytes >= self.max_bytes
        return self.new_period(started, now)

    def new_period(self, started: float, now: float) -> bool:
        """Whether ``now`` falls in a later calendar period than ``started`` (False by size)."""
        if self.period is None:
            return False
        fmt = PERIODS[self.period]
        return time.strftime(fmt, time.localtime(now)) > time.strftime(fmt, time.localtime(started))

    @staticmethod
    def archives(csv_path: Path) -> list[Path]:
        """The CSVs rotated out of ``csv_path``: beside it, named as :meth:`archive_path` names
        them under any policy (``labels.2026-11.csv``, ``labels.2026-W48.1.csv``, ...)."""
        stem, suffix = re.escape(csv_path.stem), re.escape(csv_path.suffix)
        name = re.compile(rf"{stem}\.{_TAG}(?:\.\d+)?{suffix}")
        try:
            siblings = sorted(csv_path.parent.iterdir())
        except OSError:
            return []
        return [p for p in siblings if name.fullmatch(p.name) and p.is_file()]

    @staticmethod
    def rotated_from(csv_path: Path) -> Path:
        """The CSV that ``csv_path`` was rotated out of, if it is named as :meth:`archive_path`
        names one (``labels.2026-11.csv``, ``labels.2026-11-30T080509.1.csv``: ``labels.csv``
        beside it); else ``csv_path`` itself."""
        archived = _ARCHIVED.fullmatch(csv_path.name)
        if archived is None:
            return csv_path
        return csv_path.with_name(archived["stem"] + archived["suffix"])

    def archive_path(self, csv_path: Path, started: float) -> Path:
        """Where the CSV started at ``started`` goes: ``labels.<period>.csv`` beside it, with
        ``.1``, ``.2``, ... before the suffix if that name is taken."""
        fmt = PERIODS[self.period] if self.period else STARTED
        tag = time.strftime(fmt, time.localtime(started))
        stem, suffix = csv_path.stem, csv_path.suffix
        candidate = csv_path.with_name(f"{stem}.{tag}{suffix}")
        n = 0
        while candidate.exists() or candidate.is_symlink():
            n += 1
            candidate = csv_path.with_name(f"{stem}.{tag}.{n}{suffix}")
        return candidate

"""Images with more than one row in the CSVs that ``edgefer summary`` reads.

A CSV does not name its model, and the two shipped models have the same labels: one folder
classified by each, summarised together, was counted twice without a word. A watch daemon's
CSV, on the other hand, has a second row for a file classified again (put back, a new
version), and that is a row to count.
"""

from __future__ import annotations

import os
from array import array

import numpy as np

#: Hashes taken in before they are sorted into the CSV's own.
_CHUNK = 8192
#: What in a path os.path.normpath() may change: ``/./``, ``/../``, ``//``.
_DOT, _TWO = os.sep + ".", os.sep * 2


class Repeats:
    """The paths of the images in each CSV read, as 64-bit hashes in numpy arrays: 8 bytes a
    path, where a set of the paths took 126 (a daemon's million rows: 126 MB). Two paths
    with one hash would be taken for one image: about one chance in 37 million for a million
    paths.

    A relative path is taken from the current folder, as ``classify --append`` takes it."""

    def __init__(self) -> None:
        self._here = os.path.join(os.getcwd(), "")  # once, not per row as abspath() does
        self._pending = array("q")
        # Sorted into the CSV's own when they are as many: each hash is sorted a few times in
        # all, not once per chunk.
        self._limit = _CHUNK
        self._csv = np.empty(0, np.int64)  # this CSV's hashes so far: sorted, each once
        self._twice = np.empty(0, np.int64)  # those of images with more than one row in it
        self._done: list[np.ndarray] = []  # each CSV read before, as ``_csv``
        #: Images with more than one row in the CSV they are in, over all the CSVs read.
        self.within = 0

    def add(self, path: str) -> None:
        """One image's row (with faces: its first face's, or its one row) of the CSV being read."""
        # os.path.abspath(), but its normpath (pure Python before 3.12) only for a path that
        # needs one: on a daemon's CSV of absolute paths, abspath() took three times the rest.
        if not path.startswith(os.sep):
            path = self._here + path
        if _DOT in path or _TWO in path:
            path = os.path.normpath(path)
        self._pending.append(hash(path))
        if len(self._pending) >= self._limit:
            self._merge()

    def end_csv(self) -> None:
        """The CSV being read has ended; the next :meth:`add` is another's."""
        self._merge()
        self.within += len(self._twice)
        self._done.append(self._csv)
        self._csv = self._twice = np.empty(0, np.int64)
        self._limit = _CHUNK

    def across(self) -> tuple[int, list[int]]:
        """How many images have rows in more than one CSV, and which CSVs those are (their
        indexes, in the order read)."""
        if len(self._done) < 2:
            return 0, []
        hashes = np.concatenate(self._done)
        hashes.sort()
        # Each CSV holds a hash once: a hash twice is in two CSVs (three times: in three).
        shared = _distinct(hashes[1:][hashes[1:] == hashes[:-1]])
        del hashes
        if not len(shared):
            return 0, []
        csvs = []
        for i, own in enumerate(self._done):
            at = np.minimum(np.searchsorted(shared, own), len(shared) - 1)
            if np.any(shared[at] == own):
                csvs.append(i)
        return len(shared), csvs

    def _merge(self) -> None:
        if not self._pending:
            return
        merged = np.concatenate((self._csv, np.frombuffer(self._pending, np.int64)))
        self._pending = array("q")
        merged.sort()
        again = merged[1:] == merged[:-1]
        if again.any():  # _csv holds each once: a hash again is a row again
            self._twice = _distinct(np.sort(np.concatenate((self._twice, merged[1:][again]))))
            merged = _distinct(merged)
        self._csv = merged
        self._limit = max(_CHUNK, len(merged))


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """A sorted array with each value once."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]

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

from edgefer.csvout import absolute_paths

#: Hashes taken in before they are sorted into the CSV's own.
_CHUNK = 8192


class Repeats:
    """The paths of the images in each CSV read, as 64-bit hashes in numpy arrays: 8 bytes a
    path, where a set of the paths took 126 (a daemon's million rows: 126 MB). Two paths
    with one hash would be taken for one image: about one chance in 37 million for a million
    paths.

    An image is its path as ``classify --append`` keys it (:func:`edgefer.csvout.path_key`):
    a relative path is taken from the current folder.

    CSVs of one set (a daemon's CSV and those ``--rotate`` put aside) are one CSV here: an
    image in two of them was classified again, as it may be within one."""

    def __init__(self) -> None:
        self._absolute = absolute_paths(os.getcwd())  # asked once, not per row
        self._pending = array("q")
        # Sorted into the CSV's own when they are as many: each hash is sorted a few times in
        # all, not once per chunk.
        self._limit = _CHUNK
        self._csv = np.empty(0, np.int64)  # this CSV's hashes so far: sorted, each once
        self._twice = np.empty(0, np.int64)  # those of images with more than one row in it
        self._done: list[np.ndarray] = []  # each CSV read before, as ``_csv``
        self._done_twice: list[np.ndarray] = []  # and as ``_twice``
        self._set_of: list[object] = []  # and its set (None: a set of its own)
        self._by_set: list[tuple[np.ndarray, int]] | None = None  # :meth:`_sets`, once
        self._across: tuple[int, list[int]] | None = None  # :meth:`across`, once
        self._relative = False  # whether this CSV has a relative path
        self._done_relative: list[bool] = []  # and each CSV read before

    def add(self, path: str) -> None:
        """One image's row (with faces: its first face's, or its one row) of the CSV being read."""
        # As path_key() makes the cell's: Cells.path is the cell before neutralize().
        key = self._absolute(path)
        self._pending.append(hash(key))
        if key is not path and path[:1] != os.sep:  # a path it left as it was: not relative
            self._relative = True
        if len(self._pending) >= self._limit:
            self._merge()

    def end_csv(self, of_set: object = None) -> None:
        """The CSV being read has ended; the next :meth:`add` is another's. ``of_set``: CSVs
        ended with the same one (not None) are of one set."""
        self._merge()
        self._done.append(self._csv)
        self._done_twice.append(self._twice)
        self._set_of.append(of_set)
        self._done_relative.append(self._relative)
        self._relative = False
        self._by_set = self._across = None
        self._csv = self._twice = np.empty(0, np.int64)
        self._limit = _CHUNK

    @property
    def within(self) -> int:
        """Images with more than one row in the CSV (or set) they are in, over all read."""
        return sum(twice for _, twice in self._sets())

    def sets_of_several(self) -> bool:
        """Whether more than one CSV of a set was read."""
        ofs = [of for of in self._set_of if of is not None]
        return len(set(ofs)) < len(ofs)

    def across(self) -> tuple[int, list[int]]:
        """How many images have rows in more than one CSV (not of one set), and which CSVs
        those are (their indexes, in the order read)."""
        if self._across is None:
            self._across = self._find_across()
        return self._across

    def relative_across(self) -> bool:
        """Whether a CSV of :meth:`across` has a relative path: read from the current folder,
        not the one it was written in (a CSV does not say), it may name another image."""
        return any(self._done_relative[i] for i in self.across()[1])

    def _find_across(self) -> tuple[int, list[int]]:
        sets = self._sets()
        if len(sets) < 2:
            return 0, []
        hashes = np.concatenate([own for own, _ in sets])
        hashes.sort()
        # Each set holds a hash once: a hash twice is in two sets (three times: in three).
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

    def _sets(self) -> list[tuple[np.ndarray, int]]:
        """Each set's hashes (sorted, each once) and how many of its images have more than one
        row in it; a CSV of no set is one of its own."""
        if self._by_set is not None:
            return self._by_set
        members: dict[object, list[int]] = {}
        for i, of in enumerate(self._set_of):
            members.setdefault(i if of is None else ("set", of), []).append(i)
        self._by_set = []
        for csvs in members.values():
            if len(csvs) == 1:
                self._by_set.append((self._done[csvs[0]], len(self._done_twice[csvs[0]])))
                continue
            hashes = np.concatenate([self._done[i] for i in csvs])
            hashes.sort()
            again = hashes[1:][hashes[1:] == hashes[:-1]]  # in two of its CSVs
            twice = np.concatenate([again, *(self._done_twice[i] for i in csvs)])
            twice.sort()
            self._by_set.append((_distinct(hashes), len(_distinct(twice))))
        return self._by_set

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

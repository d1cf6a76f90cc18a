"""Which files to classify: named files always, directory entries when they look like images."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgefer.preprocess import IMAGE_SUFFIXES, Stream


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _looks_like_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _is_special(entry: os.DirEntry) -> bool:
    """A FIFO, socket or device, or a symlink to one: opening one to decode it can block
    forever (a FIFO without a writer). Told from the directory listing itself, with a stat
    call for symlinks only."""
    if entry.is_symlink():
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            return False  # broken, or a loop: it gets its error row
        return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
    return not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False))


_DESCRIPTOR = re.compile(r"/dev/stdin|/dev/fd/\d+|/proc/self/fd/\d+")


def _names_a_descriptor(path: str) -> bool:
    """``/dev/stdin``, ``/dev/fd/N``, ``/proc/self/fd/N``: this process's open file, whatever it
    is (a file redirected in with ``<``), not a file of that name."""
    return _DESCRIPTOR.fullmatch(os.path.abspath(path)) is not None


def _scan(
    directory: str, recursive: bool, unlistable: list[str], skip: frozenset[str] = frozenset()
) -> Iterator[str]:
    """Image paths in ``directory`` (and below it with ``recursive``, the absolute folder paths
    in ``skip`` apart), lazily: a list of DirEntry objects for 50,000 files costs ~11 MB."""
    try:
        entries = os.scandir(directory)
    except OSError as exc:
        unlistable.append(f"{directory}: {exc.strerror or exc}")
        return
    with entries:
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            # Symlinked directories are not followed: loops and duplicate rows would follow them.
            if recursive and entry.is_dir(follow_symlinks=False):
                if not skip or os.path.abspath(entry.path) not in skip:
                    yield from _scan(entry.path, recursive, unlistable, skip)
            elif _looks_like_image(entry.name) and not _is_special(entry):
                # Includes broken symlinks and directories named like images: each gets a row.
                yield entry.path


def discover(
    inputs: Iterable[str | os.PathLike],
    recursive: bool = False,
    unlistable: list[str] | None = None,
    skip: Iterable[str | os.PathLike] = (),
) -> list[str]:
    """Sorted paths to classify, one per file (``a/x.jpg``, ``./a/x.jpg`` and its absolute
    path are one file: the spelling met first is kept).

    A named file is always included (even a hidden one, a non-image or a missing one, which
    then gets an error row; a named FIFO or device comes back as a
    :class:`~edgefer.preprocess.Stream`, as does ``-``, standard input); a named directory
    contributes its non-hidden entries with image suffixes (FIFOs, sockets and devices
    excepted), and with ``recursive`` those of its subdirectories (symlinked ones are not
    followed) but for the folders in ``skip`` (an output folder inside an input).
    Subdirectories that cannot be listed are skipped and described (``"path: reason"``) in
    ``unlistable``.

    Raises:
        PermissionError: a named directory cannot be listed.
    """
    found: dict[str, str] = {}  # one row per file, however it was spelled: the first spelling

    def add(path: str) -> None:
        found.setdefault(os.path.abspath(path), path)

    skipped = unlistable if unlistable is not None else []
    excluded = frozenset(os.path.abspath(x) for x in skip)
    for item in inputs:
        path = os.fspath(item)
        if path == "-":  # standard input, as for `-o -` and `summary -` (a file: ./-)
            path = "/dev/stdin"
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            mode = 0  # missing, a broken symlink, a loop...: it gets its error row
        if stat.S_ISDIR(mode):
            os.listdir(path)  # raises PermissionError for an unreadable named directory
            for entry in _scan(path, recursive, skipped, excluded):
                add(entry)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or _names_a_descriptor(path):
            add(Stream(path))
        else:
            add(path)
    return sorted(found.values())


def images_below(directory: str | os.PathLike, exclude: Iterable[str] = ()) -> str | None:
    """The first subfolder of ``directory`` that holds an image at any depth, as ``recursive``
    would search it, the folders ``exclude`` and all below them apart; None if there is none."""
    skip = frozenset(os.path.abspath(x) for x in exclude)
    try:
        with os.scandir(directory) as entries:
            subfolders = sorted(
                e.path
                for e in entries
                if not _is_hidden(e.name) and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return None
    for sub in subfolders:
        if os.path.abspath(sub) not in skip and next(_scan(sub, True, [], skip), None):
            return sub
    return None


def empty_folders(
    inputs: Iterable[str | os.PathLike], paths: Iterable[str], recursive: bool = False
) -> list[str]:
    """The named folders among ``inputs`` that gave none of ``paths`` (:func:`discover`'s
    answer for the same ``recursive``), however either was spelled."""
    folders = {os.path.abspath(i): os.fspath(i) for i in inputs if os.path.isdir(i)}
    gave = {os.path.dirname(os.path.abspath(p)) for p in paths}
    if recursive:  # a file also came from every folder above its own
        for folder in list(gave):
            while (parent := os.path.dirname(folder)) != folder and parent not in gave:
                gave.add(parent)
                folder = parent
    return [name for path, name in folders.items() if path not in gave]


def images_under(folder: Path) -> list[Path]:
    """Image files in ``folder`` and its sub-folders (``Surprise/batch2/``), sorted, hidden ones
    not: a class folder's images, for training, calibration and validation alike."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found += images_under(entry)
        elif _looks_like_image(entry.name) and entry.is_file():
            found.append(entry)
    return found

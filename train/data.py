"""Datasets as in-memory arrays: folder discovery, stratified split, decoding, cache, duplicates.

Every pixel is decoded by :func:`edgefer.preprocess.load_image`, the device's own decoder, so
training and inference see identical inputs. No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgefer.discovery import images_under
from edgefer.preprocess import IMAGE_SUFFIXES, ImageError, load_image
from train.config import FitConfig

SPLIT_NAMES = ("train", "val", "test")
#: Where fit and the commands on its runs (report, average, split) cache decoded folders.
CACHE_DIR = Path("runs/cache")
#: A run's split of one data folder (``Dataset.assignment``), written before its first epoch.
SPLIT_FILE = "split.json"
#: The reference report's protocol for a single folder: 70/15/15, stratified, fixed seed.
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
CACHE_VERSION = 2
#: Cache entries kept per folder, the most recently used (two: a model's input size and the
#: baselines' 48x48 grey, say, without decoding again at each switch); writing one more
#: removes the rest. The key (folder, labels, size, channels) makes one entry per combination.
CACHE_PER_FOLDER = 2
TMP_SUFFIX = ".tmp.npz"
#: Train images looked at, evenly spaced over the (class-sorted) list, for a grey run's note
#: that the images are in colour; and the mean channel spread (max - min, 0..255) over which
#: one counts as colour (a grey picture saved as RGB or JPEG differs by a rounding or two).
COLOUR_LOOKS = 16
COLOUR_SPREAD = 4.0
#: The EXIF tag whose values 5-8 mean the stored image is turned a quarter.
EXIF_ORIENTATION = 0x0112
#: A cache temp file untouched this long is a write that was killed (SIGKILL, OOM, power).
DEAD_TMP_SECONDS = 24 * 3600
#: How many unreadable files a log line names (the rest are counted).
SKIPPED_SHOWN = 5


@dataclass(frozen=True)
class Split:
    """One split's images: ``x`` uint8 (n, h, w, c), ``y`` int label indices, source paths."""

    x: np.ndarray
    y: np.ndarray
    paths: tuple[str, ...]
    #: Files listed but not decodable (corrupt, empty, not an image): left out, with a reason.
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.x[index], self.y[index], tuple(self.paths[i] for i in index))

    def describe_skipped(self) -> str:
        """'' or one line naming the unreadable files (the first few, then a count)."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"{path}: {why}" for path, why in self.skipped[:SKIPPED_SHOWN])
        more = len(self.skipped) - SKIPPED_SHOWN
        if more > 0:
            shown += f"; {more} more"
        return f"{len(self.skipped)} unreadable files left out ({shown})"


@dataclass(frozen=True)
class Dataset:
    """Labels plus named splits (``train``, ``val``, maybe ``test``) and how they were made."""

    labels: tuple[str, ...]
    splits: dict[str, Split]
    protocol: str  # "folders" (given train/val[/test]) or "split 70/15/15 seed N"
    duplicates: dict[str, int]
    #: Warnings for the log: unreadable files left out, classes missing from a split.
    notes: tuple[str, ...] = ()
    #: For one folder split here: each split's images, as paths relative to the folder
    #: (before duplicates are dropped from train), to make the same split again later.
    assignment: dict[str, list[str]] | None = None

    def sizes(self) -> str:
        """``train n val n [test n]``."""
        return " ".join(f"{name} {len(split)}" for name, split in self.splits.items())

    def per_class(self) -> str:
        """``train per class: label n, ...; val per class: ...`` for each split."""
        return "; ".join(f"{name} per class: {self.counts(name)}" for name in self.splits)

    def log_summary(
        self,
        log: Callable[[str], None],
        source: object,
        images_hint: str = "",
        seconds: float | None = None,
    ) -> None:
        """Log the data as fit and baselines do: ``data <source>: <protocol>, labels, images
        HxWxC<images_hint>, <every split's size>, duplicates[, loaded in <seconds>s]``, each
        split's per-class counts, then :meth:`log_notes`."""
        h, w, c = next(iter(self.splits.values())).x.shape[1:]
        took = "" if seconds is None else f", loaded in {seconds:.1f}s"
        log(
            f"data {source}: {self.protocol}, labels {','.join(self.labels)}, images "
            f"{h}x{w}x{c}{images_hint}, {self.sizes()}, duplicates {self.duplicates}{took}"
        )
        log(self.per_class())
        self.log_notes(log)

    def log_notes(self, log: Callable[[str], None]) -> None:
        """Log each of :attr:`notes` as a ``warning:`` line."""
        for note in self.notes:
            log(f"warning: {note}")

    def counts(self, split: str) -> str:
        """``label n, label n, ...`` for one split."""
        n = class_counts(self.splits[split].y, len(self.labels))
        return ", ".join(f"{label} {int(k)}" for label, k in zip(self.labels, n, strict=True))


def list_labels(folder: Path) -> tuple[str, ...]:
    """Sorted names of the non-hidden sub-folders: the label order of every model."""
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != "."))


def splits_hint(folder: Path, labels: tuple[str, ...]) -> str:
    """For a folder of no ``<label>/`` folders: which of its folders hold them (a dataset's
    root given for its ``val/``), as a hint to end a "no images" message with; else ""."""
    try:
        inner = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name[0] != "."]
    except OSError:
        return ""
    holding = [p.name for p in inner if any((p / label).is_dir() for label in labels)]
    if not holding:
        return ""
    pick = "val" if "val" in holding else holding[0]
    named = ", ".join(f"{name}/" for name in holding)
    return f" (its {named} hold them: give {folder / pick})"


def list_images(folder: Path, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Sorted image paths under ``folder/<label>/`` (at any depth) and their label indices."""
    paths: list[str] = []
    ys: list[int] = []
    for index, label in enumerate(labels):
        sub = folder / label
        if not sub.is_dir():
            continue
        files = images_under(sub)
        paths += [str(p) for p in files]
        ys += [index] * len(files)
    return paths, np.asarray(ys, dtype=np.int64)


def has_split_folders(data_dir: Path) -> bool:
    """True when ``data_dir`` holds ``train/`` and ``val/`` rather than label folders."""
    return (data_dir / "train").is_dir() and (data_dir / "val").is_dir()


def stratified_split(
    y: np.ndarray,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    seed: int = 0,
    names: tuple[str, ...] | None = None,
) -> list[np.ndarray]:
    """Indices of each part, per class shuffled with ``seed`` and cut by ``fractions``.

    Each class is cut on its own (rounding the boundaries), so every part keeps the class
    proportions. Each class has its own generator, from ``seed`` and its name (``names[c]``,
    else its index), so its split depends only on its own members: not on the order of the
    labels, on which other classes are used, or on images added to another class.
    """
    bounds = np.cumsum(fractions)[:-1] / np.sum(fractions)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(y):
        rng = np.random.default_rng([seed, _class_key(names[c] if names else str(c))])
        members = np.flatnonzero(y == c)
        members = members[rng.permutation(len(members))]
        cuts = np.round(bounds * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _class_key(name: str) -> int:
    """A class name as a seed word, the same in every process (``hash()`` is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8])


def decode_all(
    paths: list[str], size: tuple[int, int], channels: int, workers: int = 8
) -> tuple[np.ndarray, dict[int, str]]:
    """The images as one uint8 array, and ``{index: reason}`` for those that could not be
    decoded (their rows are left zero). Pillow releases the GIL, so threads overlap the I/O."""
    out = np.empty((len(paths), *size, channels), dtype=np.uint8)
    failed: dict[int, str] = {}

    def one(i: int) -> None:
        try:
            out[i] = load_image(paths[i], size, channels)
        except ImageError as exc:  # one corrupt file must not end a training run
            out[i] = 0
            failed[i] = str(exc)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(paths)), chunksize=256))
    return out, failed


def files_signature(paths: list[str]) -> str:
    """A digest of the files' names, sizes and mtimes: a file replaced in place changes it."""
    digest = hashlib.sha1()
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def cache_key(folder: Path, labels: tuple[str, ...], size: tuple[int, int], channels: int) -> str:
    """Stable name for a folder decoded at ``size`` x ``channels``."""
    ident = json.dumps(
        [CACHE_VERSION, str(folder.resolve()), list(labels), list(size), channels]
    ).encode()
    return f"{folder.name}-{size[0]}x{size[1]}x{channels}-{hashlib.sha1(ident).hexdigest()[:12]}"


def load_folder(
    folder: Path,
    labels: tuple[str, ...],
    size: tuple[int, int],
    channels: int,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Split:
    """Decode ``folder/<label>/*`` (or read it from the .npz cache when no file was added,
    removed or changed: names, sizes and mtimes). Undecodable files are left out and listed in
    ``Split.skipped``. ``log`` is told when decoding starts and ends (minutes for large
    images), and of cache entries removed (see :func:`prune_cache`)."""
    paths, y = list_images(folder, labels)
    signature = files_signature(paths)
    cache = cache_dir / (cache_key(folder, labels, size, channels) + ".npz") if cache_dir else None
    if cache is not None:
        cached = _read_cache(cache, signature, log)
        if cached is not None:
            return cached
    split = decode_split(paths, y, size, channels, log, folder)
    if cache is not None:
        _write_cache(cache, split, signature, folder)
        prune_cache(cache, folder, log)
    return split


def _read_cache(
    cache: Path, signature: str, log: Callable[[str], None] | None = None
) -> Split | None:
    """The entry ``cache`` if it was made from the files of ``signature``, else None (also for
    an entry that cannot be read, which ``log`` is told of: the caller decodes and replaces
    it)."""
    try:
        with np.load(cache) as z:
            if "signature" not in z.files or str(z["signature"]) != signature:
                return None
            skipped = tuple((str(p), str(w)) for p, w in zip(z["skipped"], z["why"], strict=True))
            split = Split(z["x"], z["y"], tuple(str(p) for p in z["paths"]), skipped)
    except FileNotFoundError:  # none yet, or removed by another run's prune_cache meanwhile
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # Cut short or damaged (a copy of runs/ that stopped): a traceback naming no file at
        # every start, until someone found and removed it.
        if log is not None:
            log(f"cache: {cache.name} cannot be read ({exc or type(exc).__name__}): decoding again")
        return None
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(cache)  # its mtime is its last use: prune_cache keeps the recently used
    return split


def _write_cache(cache: Path, split: Split, signature: str, folder: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Own temp name per process: two runs started together on one dataset both decode it,
    # and a shared temp name had the second rename fail (FileNotFoundError) and end its run.
    tmp = cache.with_suffix(f".{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        np.savez(
            tmp,
            x=split.x,
            y=split.y,
            paths=np.asarray(split.paths, dtype=str),
            skipped=np.asarray([p for p, _ in split.skipped], dtype=str),
            why=np.asarray([w for _, w in split.skipped], dtype=str),
            signature=np.asarray(signature),
            folder=np.asarray(str(folder.resolve())),
        )
        tmp.replace(cache)
    except BaseException:  # a full disk, Ctrl-C: no gigabytes of half a cache left behind
        tmp.unlink(missing_ok=True)
        raise


def prune_cache(kept: Path, folder: Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """Remove the cache entries of ``folder`` beyond the :data:`CACHE_PER_FOLDER` used most
    recently (``kept``, just written, always stays), and temp files of writes that were killed
    (untouched for :data:`DEAD_TMP_SECONDS`). Entries of other folders, and ones that do not
    record their folder (written before they did), are left alone. Returns what was removed."""
    resolved, mine, removed = str(folder.resolve()), [], []
    for entry in kept.parent.glob("*.npz"):
        try:
            if entry.name.endswith(TMP_SUFFIX):
                if time.time() - entry.stat().st_mtime > DEAD_TMP_SECONDS:
                    entry.unlink()
                    removed.append(entry)
                continue
            with np.load(entry) as z:
                if entry != kept and "folder" in z.files and str(z["folder"]) == resolved:
                    mine.append((entry.stat().st_mtime_ns, entry))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            continue  # gone meanwhile (another run pruned it), or not an entry of ours
    for _, entry in sorted(mine, reverse=True)[CACHE_PER_FOLDER - 1 :]:
        entry.unlink(missing_ok=True)
        removed.append(entry)
    if log is not None and removed:
        gone = ", ".join(p.name for p in removed)
        log(f"cache: removed {gone} ({CACHE_PER_FOLDER} entries kept per folder)")
    return removed


def decode_split(
    paths: list[str],
    y: np.ndarray,
    size: tuple[int, int],
    channels: int,
    log: Callable[[str], None] | None = None,
    where: Path | str = "",
) -> Split:
    """``paths`` (labels ``y``) decoded; undecodable files are left out and listed in
    ``Split.skipped``. ``log`` is told when decoding starts and ends (minutes for large
    images)."""
    started = time.time()
    if log is not None:
        shape, gib = f"{size[0]}x{size[1]}x{channels}", _gib(len(paths), size, channels)
        log(f"decoding {len(paths)} images in {where} at {shape} ({gib})")
    x, failed = decode_all(paths, size, channels)
    if log is not None:
        log(f"decoded {where} in {time.time() - started:.0f}s")
    keep = np.asarray([i for i in range(len(paths)) if i not in failed], dtype=np.int64)
    skipped = tuple((paths[i], failed[i]) for i in sorted(failed))
    return keep_rows(Split(x, y, tuple(paths), skipped), keep)


def _gib(n: int, size: tuple[int, int], channels: int) -> str:
    return f"{n * size[0] * size[1] * channels / 2**30:.2f} GiB as uint8"


def keep_rows(split: Split, keep: np.ndarray) -> Split:
    """``split`` cut to the rows ``keep`` (ascending indices), moving them within its ``x``
    rather than copying: ``split.x`` is changed, and must not be shared. (``x[keep]`` holds
    all the images twice for a moment: 4.4 GB at 222x222x3 for 15,000.)"""
    x = split.x
    for row, index in enumerate(keep.tolist()):
        if row != index:
            x[row] = x[index]
    return Split(x[: len(keep)], split.y[keep], tuple(split.paths[i] for i in keep), split.skipped)


def permute_rows(x: np.ndarray, order: np.ndarray) -> None:
    """``x[:] = x[order]`` in place, with one image of extra memory (``order``: a
    permutation of ``range(len(x))``)."""
    if not len(order):
        return  # no image: none to move, and no x[0] to size the spare row by
    seen = np.zeros(len(order), dtype=bool)
    row = np.empty_like(x[0])
    for start in range(len(order)):
        if seen[start]:
            continue
        seen[start] = True
        if order[start] == start:
            continue
        row[...] = x[start]
        k = start
        while order[k] != start:
            x[k] = x[order[k]]
            k = int(order[k])
            seen[k] = True
        x[k] = row


def pixel_hashes(x: np.ndarray) -> list[bytes]:
    """One digest per image of its decoded pixels (exact duplicates share a digest)."""
    return [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in x]


def cross_duplicates(train: Split, others: list[Split]) -> tuple[np.ndarray, dict[str, int]]:
    """Train indices whose pixels also occur in another split, and counts for the report.

    Counts: ``train_in_other`` (train images duplicated elsewhere), ``label_conflicts`` (of those,
    ones whose label differs), ``within_train`` (train images repeating an earlier train image).
    """
    other_labels: dict[bytes, int] = {}
    for split in others:
        other_labels.update(zip(pixel_hashes(split.x), split.y.tolist(), strict=True))
    hashes = pixel_hashes(train.x)
    leak = np.asarray([h in other_labels for h in hashes], dtype=bool)
    conflicts = sum(
        1
        for h, y in zip(hashes, train.y.tolist(), strict=True)
        if h in other_labels and other_labels[h] != y
    )
    counts = {
        "train_in_other": int(leak.sum()),
        "label_conflicts": int(conflicts),
        "within_train": len(hashes) - len(set(hashes)),
    }
    return np.flatnonzero(leak), counts


def load_dataset(
    data_dir: Path,
    size: tuple[int, int],
    channels: int,
    classes: tuple[str, ...] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    dedupe: bool = True,
    assignment: dict[str, list[str]] | None = None,
    log: Callable[[str], None] | None = None,
    limit: int = 0,
    split_seed: int = 0,
) -> Dataset:
    """Load ``data_dir`` as train/val[/test] folders, or split one labelled folder 70/15/15.

    ``split_seed``: the seed of that split (``seed`` draws ``limit``'s images only), so that
    runs of any seed on one folder are scored on the same images.

    ``assignment`` (a run's ``Dataset.assignment``): make that split again, whatever images
    were added to or removed from the folder since (a new split would move images between
    train and val/test); the changes are named in ``Dataset.notes``.

    With ``dedupe``, train images whose pixels also appear in val/test are dropped from train
    (validation stays as published); the counts are kept in ``Dataset.duplicates`` either way.

    ``limit`` (timing and smoke runs): at most this many images per split, drawn with ``seed``
    from the listed files before any is decoded, so only those are read (the cache is neither
    read nor written). A single folder is then split as listed, unreadable files included, and
    left out once drawn; duplicates are looked for among the drawn images only (a train image
    copying a val image that was not drawn is kept: nothing is measured on that image), so
    train may end up with fewer than ``limit``.

    Unreadable image files are left out and named in ``Dataset.notes``.

    Raises:
        ValueError: fewer than two labels, a ``classes`` name that is not a folder, a class
            with no readable training image (with ``limit``, a class with none among those
            drawn has its other files tried in turn), or (without ``classes``) a val/test
            folder that is not one of train's classes (its images would be dropped without a
            word).
    """
    split_folders = has_split_folders(data_dir)
    label_root = data_dir / "train" if split_folders else data_dir
    labels = classes or list_labels(label_root)
    if not split_folders and not classes:
        _refuse_split_folders_as_classes(data_dir, labels)
    missing = [c for c in labels if not (label_root / c).is_dir()]
    if missing:
        raise ValueError(
            f"no such class folder in {label_root}: {', '.join(missing)}"
            + _other_case(label_root, missing)
        )
    if len(labels) < 2 and classes:
        raise ValueError(
            f"--classes names one class ({', '.join(labels)}): a model needs two or more"
        )
    if len(labels) < 2:
        raise ValueError(f"{label_root} has fewer than two label folders")
    notes: list[str] = []
    if not split_folders and not classes:
        notes += _split_folders_by_other_names(label_root, labels)
    for folder in [data_dir, *(data_dir / n for n in SPLIT_NAMES if split_folders)]:
        notes += _loose_images(folder)
    if split_folders:
        names = [n for n in SPLIT_NAMES if (data_dir / n).is_dir()]
        for name in names[1:]:
            strays = sorted(set(list_labels(data_dir / name)) - set(labels))
            if strays and not classes:
                raise ValueError(
                    f"{data_dir / name} has folders that are not classes in {label_root}: "
                    f"{', '.join(strays)} (names must match exactly, case included)"
                )
        protocol = "folders " + "/".join(names)
        if limit:
            listed = {n: list_images(data_dir / n, labels) for n in names}
        else:
            splits = {
                n: load_folder(data_dir / n, labels, size, channels, cache_dir, log) for n in names
            }
    else:
        protocol = f"stratified 70/15/15 seed {split_seed}"
        if limit:
            paths, y = list_images(data_dir, labels)
            parts, assignment, changes = _assign(paths, y, labels, data_dir, split_seed, assignment)
            listed = {
                n: ([paths[k] for k in i], y[i]) for n, i in zip(SPLIT_NAMES, parts, strict=True)
            }
        else:
            whole = load_folder(data_dir, labels, size, channels, cache_dir, log)
            if whole.skipped:
                notes.append(whole.describe_skipped())
            paths = list(whole.paths)
            parts, assignment, changes = _assign(
                paths, whole.y, labels, data_dir, split_seed, assignment
            )
            splits = _split_in_place(whole, parts)
            del whole
        notes += changes
    if limit:  # the classes checked on the listing, before anything is decoded
        notes += _check_classes(labels, {n: y for n, (_, y) in listed.items()}, label_root)
        splits = _draw(listed, limit, seed, size, channels, log)
        _check_readable(labels, listed["train"], splits["train"], size, channels, label_root)
        if not len(splits["train"]):
            raise ValueError(f"none of the train images drawn by limit {limit} could be read")
        protocol += f", limit {limit}"
    else:
        notes += _check_classes(labels, {n: s.y for n, s in splits.items()}, label_root)
    notes += [f"{n}: {s.describe_skipped()}" for n, s in splits.items() if s.skipped]
    others = [s for n, s in splits.items() if n != "train"]
    leak, counts = cross_duplicates(splits["train"], others)
    if dedupe and len(leak):
        keep = np.setdiff1d(np.arange(len(splits["train"])), leak)
        splits["train"] = keep_rows(splits["train"], keep)
    counts["dropped_from_train"] = int(len(leak)) if dedupe else 0
    if channels == 1:
        notes += colour_note(splits["train"].paths)
    return Dataset(labels, splits, protocol, counts, tuple(notes), assignment)


def colour_note(paths: tuple[str, ...] | list[str], looks: int = COLOUR_LOOKS) -> list[str]:
    """A note when most of ``paths`` (``looks`` of them, evenly spaced) are in colour, with
    their typical stored size: read as grey (``--channels 1``, the default) they lose the
    colour, which the log did not say. ``[]`` otherwise, or when none can be looked at."""
    spaced = np.unique(np.linspace(0, len(paths) - 1, looks).round()) if paths else []
    colour, sides = 0, []
    for path in (paths[int(i)] for i in spaced):
        # A look, not a model input: Pillow at reduced scale, not load_image (which a --limit
        # run calls only on the images it drew, once), so a face photo costs a few ms.
        try:
            with Image.open(path) as im:
                turned = im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
                side = im.size[::-1] if turned else im.size
                im.draft("RGB", (32, 32))
                rgb = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue
        sides.append(side)
        colour += float((rgb.max(-1) - rgb.min(-1)).mean()) > COLOUR_SPREAD
    looked = len(sides)
    if colour * 2 <= looked:
        return []
    w, h = np.median(np.asarray(sides), axis=0).astype(int)
    return [
        f"the images are in colour ({colour} of {looked} train images looked at; about {w}x{h} "
        "px) and are read as grey (--channels 1, the default): --channels 3 keeps the colour"
    ]


def _other_case(folder: Path, missing: list[str]) -> str:
    """'' or ``" (Angry is there: ...)"``: the folders named as ``missing`` classes but for
    their case (``--classes angry`` for the reference report's ``Angry/``)."""
    there = {name.casefold(): name for name in list_labels(folder)}
    found = [there[m.casefold()] for m in missing if m.casefold() in there]
    if not found:
        return ""
    verb = "is" if len(found) == 1 else "are"
    return f" ({', '.join(found)} {verb} there: names must match exactly, case included)"


def _loose_images(folder: Path) -> list[str]:
    """A note when ``folder`` (the dataset's root, or a split folder) holds images of its own,
    beside the class folders: they belong to no class and are left out, which the log did not
    say. ``[]`` otherwise (or when ``folder`` is not there)."""
    if not folder.is_dir():
        return []
    found = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not found:
        return []
    if len(found) == 1:
        return [
            f"1 image directly in {folder}, in no class folder, is left out ({found[0]}): "
            "move it into its class's folder"
        ]
    return [
        f"{len(found)} images directly in {folder}, in no class folder, are left out (e.g. "
        f"{found[0]}): move them into their class's folder"
    ]


def _refuse_split_folders_as_classes(data_dir: Path, labels: tuple[str, ...]) -> None:
    """Refuse split folders without ``val/`` (``train/`` + ``test/``, as many datasets are
    published), which would otherwise be split as one folder whose classes are ``train`` and
    ``test``: label folders named as splits that hold folders themselves.

    Raises:
        ValueError: naming the split folder that is missing.
    """
    splits = [
        n
        for n in labels
        if n in SPLIT_NAMES
        and any(p.is_dir() and not p.name.startswith(".") for p in (data_dir / n).iterdir())
    ]
    if splits:
        absent = [n for n in SPLIT_NAMES[:2] if not (data_dir / n).is_dir()]
        raise ValueError(
            f"{data_dir} has {' + '.join(n + '/' for n in splits)} but no "
            f"{' or '.join(n + '/' for n in absent)}: give train/ + val/ (+ test/) folders of "
            "class folders, or one folder of class folders (split 70/15/15 here); as it is, "
            f"{', '.join(splits)} would be taken as classes"
        )


def _split_folders_by_other_names(label_root: Path, labels: tuple[str, ...]) -> list[str]:
    """A note when the label folders hold no image of their own and each holds the same
    folders (``Training/Angry``, ``Testing/Angry``, ...): split folders under names other than
    train/val/test, taken here as classes. Only a note: batch folders can look alike."""
    subfolders = []
    for label in labels:
        entries = [p for p in (label_root / label).iterdir() if not p.name.startswith(".")]
        if any(not p.is_dir() for p in entries):
            return []
        subfolders.append({p.name for p in entries})
    shared = subfolders[0]
    if len(shared) < 2 or any(names != shared for names in subfolders):
        return []
    shown = ", ".join(sorted(shared)[:6]) + (" ..." if len(shared) > 6 else "")
    return [
        f"the class folders {', '.join(labels)} each hold the same folders ({shown}): if "
        "those are the classes, rename the split folders train/ + val/ (+ test/), or put the "
        "class folders in one folder"
    ]


def _assign(
    paths: list[str],
    y: np.ndarray,
    labels: tuple[str, ...],
    data_dir: Path,
    seed: int,
    assignment: dict[str, list[str]] | None,
) -> tuple[list[np.ndarray], dict[str, list[str]], list[str]]:
    """One folder's images (``paths``, label indices ``y`` into ``labels``) split: each part's
    indices, the split as paths relative to ``data_dir``, and notes on images that came or went
    since ``assignment`` (a run's split, made again when given)."""
    relative = [os.path.relpath(p, data_dir) for p in paths]
    notes: list[str] = []
    if assignment is None:
        parts = stratified_split(y, DEFAULT_FRACTIONS, seed, labels)
    else:
        parts, notes = _reassign(relative, assignment)
    made = {n: [relative[k] for k in i] for n, i in zip(SPLIT_NAMES, parts, strict=True)}
    return parts, made, notes


def _check_classes(
    labels: tuple[str, ...], ys: dict[str, np.ndarray], label_root: Path
) -> list[str]:
    """Notes on val/test splits that miss a class (``ys``: each split's labels).

    Raises:
        ValueError: a class with no training image.
    """
    n = len(labels)
    empty = [c for c, k in zip(labels, class_counts(ys["train"], n), strict=True) if not k]
    if empty:
        raise _no_training_images(empty, label_root)
    notes = []
    for name, y in ys.items():
        absent = [c for c, k in zip(labels, class_counts(y, n), strict=True) if not k]
        if name != "train" and absent and len(y):
            notes.append(f"{name} has no images of {', '.join(absent)}")
    return notes


def _no_training_images(classes: list[str], label_root: Path) -> ValueError:
    return ValueError(
        f"no readable training images for class {', '.join(classes)} under {label_root}: "
        "remove the folder, or name the classes to use with --classes"
    )


def _check_readable(
    labels: tuple[str, ...],
    listed: tuple[list[str], np.ndarray],
    drawn: Split,
    size: tuple[int, int],
    channels: int,
    label_root: Path,
) -> None:
    """With ``limit``, what the full load checks: each class has a readable training image.
    A class with none among those drawn (``drawn``, from ``listed``) has its other files
    decoded in turn until one can be: one decode for a class the draw missed, every file only
    for a class of unreadable files (which the full load decodes too).

    Raises:
        ValueError: a class none of whose training files can be read.
    """
    tried = {*drawn.paths, *(p for p, _ in drawn.skipped)}
    have = class_counts(drawn.y, len(labels))
    paths, y = listed
    empty = []
    for index, label in enumerate(labels):
        if have[index]:
            continue
        others = (p for p, k in zip(paths, y.tolist(), strict=True) if k == index)
        if not any(_readable(p, size, channels) for p in others if p not in tried):
            empty.append(label)
    if empty:
        raise _no_training_images(empty, label_root)


def _readable(path: str, size: tuple[int, int], channels: int) -> bool:
    try:
        load_image(path, size, channels)
    except ImageError:
        return False
    return True


def _draw(
    listed: dict[str, tuple[list[str], np.ndarray]],
    limit: int,
    seed: int,
    size: tuple[int, int],
    channels: int,
    log: Callable[[str], None] | None,
) -> dict[str, Split]:
    """At most ``limit`` of each split's listed images, drawn with ``seed`` (one generator,
    the splits in order, as ``fit --limit`` drew them from decoded splits before), decoded."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, (paths, y) in listed.items():
        index = np.sort(rng.permutation(len(paths))[:limit])
        chosen = [paths[k] for k in index]
        splits[name] = decode_split(
            chosen, y[index], size, channels, log, f"{name} (limit {limit})"
        )
    return splits


def prepare_data(
    cfg: FitConfig, run: Path | None = None, log: Callable[[str], None] | None = None
) -> Dataset:
    """The dataset, cut to ``cfg.limit`` images per split (drawn from the file lists, so that
    only those are decoded: see :func:`train.data.load_dataset`).

    ``run``: a run folder; if it holds the split it was trained on, that split is made again
    (else train and val/test images would trade places after a file was added or removed),
    with the run's labels (``cfg.classes``, else its ``spec.json``'s), whatever folders were
    added since.

    Raises:
        FileNotFoundError: the data folder is not there (moved or deleted since the run).
        ValueError: as :func:`load_dataset`.
    """
    if not Path(cfg.data_dir).is_dir():
        where = f"; {run / 'config.json'} names it" if run is not None else ""
        raise FileNotFoundError(
            f"the run's data folder {cfg.data_dir} is not there (moved or deleted?){where}"
        )
    split_file = run / SPLIT_FILE if run is not None else None
    assignment = None
    if split_file is not None and split_file.exists():
        assignment = json.loads(split_file.read_text())
    classes = cfg.classes
    if not classes and run is not None and (run / "spec.json").exists():
        # A run whose config.json predates its labels: its model's, not the folders there now
        # (a class folder added since would be a class the model does not have).
        classes = tuple(json.loads((run / "spec.json").read_text())["labels"])
    return load_dataset(
        Path(cfg.data_dir),
        cfg.input_size,
        cfg.channels,
        classes or None,
        cfg.seed,
        CACHE_DIR,
        cfg.dedupe,
        assignment,
        log,
        cfg.limit,
        cfg.split_seed,
    )


def _split_in_place(whole: Split, parts: list[np.ndarray]) -> dict[str, Split]:
    """The named splits of ``whole`` (indices per part), as consecutive views of its ``x``
    reordered in place: one copy of the images, not two. Rows in no part go to the end."""
    rest = np.setdiff1d(np.arange(len(whole)), np.concatenate(parts))
    order = np.concatenate([*parts, rest]).astype(np.int64)
    permute_rows(whole.x, order)
    splits, start = {}, 0
    for name, index in zip(SPLIT_NAMES, parts, strict=True):
        end = start + len(index)
        splits[name] = Split(
            whole.x[start:end], whole.y[index], tuple(whole.paths[i] for i in index)
        )
        start = end
    return splits


def _reassign(
    relative: list[str], assignment: dict[str, list[str]]
) -> tuple[list[np.ndarray], list[str]]:
    """Each split's indices into ``relative`` (the folder's readable images now), as
    ``assignment`` has them; and notes on the images that came or went since."""
    where = {path: name for name, paths in assignment.items() for path in paths}
    parts = [
        np.asarray([k for k, p in enumerate(relative) if where.get(p) == name], dtype=np.int64)
        for name in SPLIT_NAMES
    ]
    notes = []
    new = sum(p not in where for p in relative)
    gone = len(where) - sum(p in where for p in relative)
    if new:
        notes.append(f"{new} image(s) added since the run's split was made are left out of it")
    if gone:
        notes.append(f"{gone} image(s) of the run's split are gone or no longer readable")
    return parts, notes


def export_split(data: Dataset, out: Path) -> dict[str, int]:
    """Write ``out/<split>/<label>/`` folders of symlinks to the images of each split, so that
    the split a run trained on can be given to ``edgefer convert --calibration/--validate``,
    ``edgefer classify`` and ``evaluate-csv``. Returns the number of images per split.

    Raises:
        FileExistsError: ``out`` exists and is not empty.
    """
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    written = {}
    for name, split in data.splits.items():
        for path, index in zip(split.paths, split.y.tolist(), strict=True):
            folder = out / name / data.labels[index]
            folder.mkdir(parents=True, exist_ok=True)
            source = Path(path).resolve()
            link, n = folder / source.name, 0
            while link.is_symlink():  # the same name in two sub-folders of a class
                n += 1
                link = folder / f"{source.stem}.{n}{source.suffix}"
            link.symlink_to(source)
        written[name] = len(split)
    return written


def class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y, minlength=n_classes)


def class_weights(y: np.ndarray, n_classes: int, power: float = 0.5) -> np.ndarray:
    """Per-class loss weights ``(mean_count / count) ** power``, rescaled to a mean of 1 per sample.

    ``power=1`` is fully balanced, ``0`` uniform; ``0.5`` (the default) lifts FER's 436 "disgust"
    images about 4x over its 7,215 "happy" without letting 16x weights dominate the gradient.
    """
    counts = np.maximum(class_counts(y, n_classes), 1).astype(np.float64)
    w = (counts.mean() / counts) ** power
    return (w / (w[y].mean())).astype(np.float32)

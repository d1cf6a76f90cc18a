"""``edgefer watch``: classify each image dropped into a folder exactly once, unattended.

Threads, and what each one owns:

- watchdog's observer calls :class:`_Handler`, which only puts events into a bounded queue. An
  exception in a handler would end watchdog's dispatcher silently, and a blocking put would stall
  it, so a full queue (or inotify's own overflow) only raises a flag that makes the worker rescan
  the folder.
- One worker thread owns everything else: the :class:`Settler`, the catch-up scan, the batch, the
  :class:`~edgefer.ledger.Ledger` (whose docstring holds the exactly-once invariant) and the
  ``--done-dir`` moves. One image's failure is that image's error row; anything else ends it.
- The main thread turns SIGTERM/SIGINT/SIGHUP into one clean stop (the batch in progress is
  finished and fsynced), talks to systemd, and exits 1 (so systemd restarts it) when the
  observer or the worker died or the folder vanished: the daemon never looks alive while
  classifying nothing.

A file is *ready* when it was closed after writing or moved into the folder, or when its size
and mtime stayed unchanged for ``--settle`` seconds; files found by the start-up scan whose mtime
is older than ``--settle`` are ready at once (not with ``--poll``: a server's clock). Temp,
hidden and lock files are ignored until renamed. Ready files run in batches of
``--batch-size``, and a batch starts when full or once its oldest file has waited
``--max-latency``. At most ``MAX_TRACKED`` files are tracked and ``MAX_EVENTS`` events queued;
beyond that a rescan picks the rest up later, so memory stays flat however many files arrive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import logging
import os
import queue
import signal
import stat
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgefer.csvout import CsvError
from edgefer.discovery import images_below
from edgefer.ledger import Identity, Ledger
from edgefer.notify import Notifier, watchdog_interval
from edgefer.photos import NO_FACE, FaceOptions, classify_photos
from edgefer.pipeline import Result, classify_paths
from edgefer.preprocess import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from edgefer.summary import counted

log = logging.getLogger("edgefer.watch")

#: Name endings of files still being written by browsers, rsync, editors and uploaders.
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload")
#: Bounds on memory: queued events, and files settling or waiting for a batch.
MAX_EVENTS = 10_000
MAX_TRACKED = 10_000
#: Directory entries looked at per worker turn, so events are not starved during catch-up.
SCAN_STEP = 256
#: Longest the worker waits for an event before checking its timers (and proving it is alive).
TICK = 0.2
#: A file seen being written (inotify: written to, or created empty, and not yet closed) is
#: complete when it is closed, or failing that once unchanged for this long (a writer that
#: holds it open). Not --settle: a writer that pauses for a second must not have its file
#: classified (and with --done-dir moved away) half written.
WRITE_TIMEOUT = 60.0
#: A file taken as complete because it stood still (found by a scan: at a start, a file whose
#: writer paused before the daemon came up is older than --settle; or with --poll, where a
#: writer may pause for longer than --settle), not because its writer closed it, gets its
#: error row, if it reads as cut short (or empty, or not yet an image), only if it is still the
#: same after this long. A change meanwhile means a writer: it settles again as usual.
RETRY_PARTIAL = 60.0
#: The errors of a file that may still be being written.
PARTIAL_ERRORS = frozenset(
    {"truncated or corrupt image", "empty file", "not an image or unsupported format"}
)
#: Seconds between STATUS= updates, and between summary lines in the log.
STATUS_EVERY = 2.0
LOG_EVERY = 300.0
#: Seconds between checks for a missing folder under --wait-for-folder.
FOLDER_CHECK = 2.0


def inotify_watch_limit() -> int | None:
    """``fs.inotify.max_user_watches``, the inotify watches a user may have (Linux)."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def inotify_watches() -> int | None:
    """The inotify watches this process holds, as the kernel counts them: one ``inotify wd:``
    line per watch in ``/proc/self/fdinfo/<fd>`` of each inotify descriptor (proc(5)).

    None where /proc does not say: not Linux, no /proc, or no watch listed at all (a daemon
    watching holds at least its folder's, so none means fdinfo does not list them)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                n += sum(line.startswith("inotify wd:") for line in f)
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor, for one)
    return n or None


class WatchError(Exception):
    """A problem with the folders given, found before watching starts."""


def is_candidate(name: str) -> bool:
    """Whether a file name is one to classify: an image suffix, and not hidden, temp or a lock."""
    lower = name.lower()
    if name.startswith((".", "~")) or lower.endswith(TEMP_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in IMAGE_SUFFIXES


@dataclass(frozen=True)
class WatchOptions:
    """How to watch.

    Attributes:
        folder: the folder producers drop images into.
        output: the CSV rows are appended to (its state file goes beside it).
        recursive: also classify files in subfolders (hidden ones and ``done_dir`` excepted;
            watched all the same, each with an inotify watch).
        poll: poll instead of inotify (network mounts: inotify misses remote changes).
        poll_interval: seconds between two scans of the folder when polling (None: half of
            ``settle``, within 0.25-2 s). Each scan stats every file in it.
        settle: seconds a file's size and mtime must stay unchanged when no close/move event
            says it is complete.
        batch_size: images per batch (and per interpreter invoke).
        max_latency: the longest a ready file waits for its batch to fill, in seconds.
        done_dir: where classified files are moved (same filesystem: an atomic rename).
        workers: image decoding threads (None: up to 4).
        max_pixels: larger images get an error row (decompression bombs).
        faces: detect faces in whole photos, one row per face (None: the images are crops).
    """

    folder: str
    output: str
    recursive: bool = False
    poll: bool = False
    poll_interval: float | None = None
    settle: float = 1.0
    batch_size: int = 16
    max_latency: float = 0.5
    done_dir: str | None = None
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    faces: FaceOptions | None = None


def check_folders(options: WatchOptions) -> None:
    """Validate the folder and ``done_dir`` (created if missing).

    Raises:
        WatchError: the folder is missing, or ``done_dir`` is unusable.
    """
    folder = os.path.abspath(options.folder)
    if not os.path.isdir(folder):
        raise WatchError(f"folder does not exist: {options.folder}")
    if options.done_dir is None:
        return
    done = os.path.abspath(options.done_dir)
    # Through links too: the inbox's real folder as --done-dir took every file for done.
    real_folder, real_done = os.path.realpath(folder), os.path.realpath(done)
    # commonpath, not a prefix + os.sep: that made `--done-dir /` "//", which contains nothing.
    if os.path.commonpath([real_done, real_folder]) == real_done:
        raise WatchError("--done-dir must not be the watched folder or contain it")
    try:
        os.makedirs(done, exist_ok=True)
        same_fs = os.stat(done).st_dev == os.stat(folder).st_dev
    except OSError as exc:
        raise WatchError(f"cannot use --done-dir {done}: {exc.strerror}") from exc
    if not same_fs:
        raise WatchError(f"--done-dir {done} must be on the same filesystem as {folder}")
    _probe_move(folder, done)


def claim_inbox(options: WatchOptions) -> int | None:
    """Lock the folder for this daemon: a ``flock`` on it, held until the returned descriptor
    is closed, exclusive with ``done_dir`` and shared without (daemons that only read may share
    a folder: two models, two CSVs).

    A daemon moving files out of a folder that another watches (the service and a run by hand
    beside it) takes what the other is classifying: rows twice over two CSVs, rows for paths
    already gone, errors for files moved away.

    None where the folder cannot be locked at all (NFS, whose emulated flock takes no
    exclusive lock on a directory): a warning, and the daemon goes on without.

    Raises:
        WatchError: another edgefer watch holds a lock that this one's excludes.
    """
    fd = os.open(os.path.abspath(options.folder), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    moves = options.done_dir is not None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if moves else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            log.warning(
                "cannot lock %s (%s): another watch on it is not kept out",
                options.folder,
                exc.strerror,
            )
            return None
        why = (
            "is watched by another edgefer watch; one that moves files out (--done-dir) needs "
            "the folder to itself"
            if moves
            else "is being emptied by another edgefer watch with --done-dir"
        )
        raise WatchError(f"{options.folder} {why}") from None
    return fd


def unwatched_images(options: WatchOptions) -> str | None:
    """Without --recursive: a subfolder (``done_dir`` apart) that holds images, which will not be
    classified (a camera that files its shots by date, say); None if there is none."""
    if options.recursive:
        return None
    exclude = [options.done_dir] if options.done_dir else []
    return images_below(options.folder, exclude)


def folder_appears(
    folder: str, stop: threading.Event, notifier: Notifier, every: float = FOLDER_CHECK
) -> bool:
    """Wait until ``folder`` exists (a drive not mounted yet, a share not up yet): True once it
    does, False when ``stop`` is set first. Tells systemd it is up and waiting (READY=1 and a
    status), and pings its watchdog meanwhile: waiting is not hanging."""
    if os.path.isdir(folder):
        return True
    log.warning("%s does not exist: waiting for it (checked every %g s)", folder, every)
    notifier.ready(f"waiting for {folder}")
    interval = watchdog_interval()
    while not stop.wait(min(every, interval) if interval else every):
        if interval:
            notifier.watchdog()
        if os.path.isdir(folder):
            log.info("%s appeared", folder)
            return True
    return False


def _probe_move(folder: str, done: str) -> None:
    """Move a hidden file from ``folder`` to ``done`` and delete it: the move every classified
    file will make, tried once at start rather than failing (and warning) for each file."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".edgefer-probe-")
        os.close(fd)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise WatchError(f"cannot test moving files out of {folder}: {exc.strerror}") from exc
        raise WatchError(
            f"--done-dir needs write access to {folder} (moving a file out of a folder writes "
            f"to it): {exc.strerror}"
        ) from exc
    target = os.path.join(done, os.path.basename(probe))
    try:
        os.rename(probe, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(probe)
        hint = ""
        if exc.errno == errno.EXDEV:
            hint = " (two mounts of one filesystem: e.g. separate systemd ReadWritePaths= entries)"
        raise WatchError(
            f"cannot move files from {folder} to {done}: {exc.strerror}{hint}"
        ) from exc
    with contextlib.suppress(OSError):
        os.unlink(target)


@dataclass
class _Tracked:
    size: int
    mtime_ns: int
    due: float  # when the file is ready if it stays unchanged
    queued: float  # the due time of this file's item in the heap
    quiet: float  # how long it must stay unchanged after a change


class Settler:
    """Files seen but not yet known to be complete.

    :meth:`track` records a file's size and mtime and when it may be ready; :meth:`pop_ready`
    stats the files whose time has come and returns those still unchanged (the others start
    settling again). A later ``due`` only updates the file's entry (its heap item is pushed
    back when it comes up); an earlier one adds an item, and the one it supersedes is skipped.
    """

    def __init__(
        self,
        settle: float,
        clock: Callable[[], float] = time.monotonic,
        stat_fn: Callable[[str], os.stat_result] = os.stat,
    ) -> None:
        self.settle = settle
        self._clock = clock
        self._stat = stat_fn
        self._files: dict[str, _Tracked] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def track(
        self, path: str, identity: Identity, delay: float, quiet: float | None = None
    ) -> None:
        """(Re)start watching ``path`` at this version; ready after ``delay`` s if unchanged,
        and after ``quiet`` s (default: ``settle``) unchanged if it changes meanwhile."""
        due = self._clock() + delay
        quiet = self.settle if quiet is None else quiet
        entry = self._files.get(path)
        if entry is None:
            self._files[path] = _Tracked(*identity, due, due, quiet)
            heapq.heappush(self._heap, (due, path))
            return
        entry.size, entry.mtime_ns = identity
        entry.quiet = quiet
        entry.due = due
        if due < entry.queued:
            entry.queued = due
            heapq.heappush(self._heap, (due, path))

    def discard(self, path: str) -> None:
        self._files.pop(path, None)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_ready(self) -> list[tuple[str, Identity]]:
        """Files whose time has come and whose size and mtime are still those tracked."""
        now = self._clock()
        ready = []
        while self._heap and self._heap[0][0] <= now:
            due, path = heapq.heappop(self._heap)
            entry = self._files.get(path)
            if entry is None or due != entry.queued:
                continue  # discarded, or superseded by an earlier item
            if entry.due > now:
                entry.queued = entry.due
                heapq.heappush(self._heap, (entry.due, path))
                continue
            try:
                st = self._stat(path)
            except OSError:
                del self._files[path]  # deleted (or moved away) before it settled
                continue
            identity = (st.st_size, st.st_mtime_ns)
            if not stat.S_ISREG(st.st_mode):
                del self._files[path]
            elif identity == (entry.size, entry.mtime_ns):
                del self._files[path]
                ready.append((path, identity))
            else:
                entry.size, entry.mtime_ns = identity
                entry.due = entry.queued = now + entry.quiet
                heapq.heappush(self._heap, (entry.due, path))
        return ready


class _Handler:
    """watchdog handler that only enqueues: nothing here may raise or block."""

    def __init__(self, events: queue.Queue, overflow: threading.Event) -> None:
        self._events = events
        self._overflow = overflow

    def dispatch(self, event: object) -> None:
        try:
            self._events.put_nowait(event)
        except Exception:  # noqa: BLE001 - queue.Full; the rescan finds what was dropped
            self._overflow.set()


class _StopRace(logging.Filter):
    """Drops watchdog's "queue_events() called when the thread is inactive": its inotify
    emitter logs it as an ERROR when a stop comes while it reads an event (a stop during a
    burst of files, every time), which is harmless and would look like a fault in the journal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in str(record.msg)


def quiet_stop_race() -> None:
    """Install :class:`_StopRace` on watchdog's inotify logger (once)."""
    logger = logging.getLogger("watchdog.observers.inotify")
    if not any(isinstance(f, _StopRace) for f in logger.filters):
        logger.addFilter(_StopRace())


class _OverflowLog(logging.Handler):
    """watchdog reports a kernel inotify queue overflow only in its log: turn it into a rescan."""

    def __init__(self, overflow: threading.Event) -> None:
        super().__init__(logging.WARNING)
        self._overflow = overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in str(record.msg).lower():
            self._overflow.set()


def stop_on_signals(stop: threading.Event) -> dict:
    """Make SIGTERM, SIGINT and SIGHUP set ``stop``; returns the handlers they had.

    SIGHUP too (a closed terminal, a ``kill -HUP``): by default it killed the daemon mid-batch,
    without its last log lines. Unless it is ignored (``nohup``): that is kept."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signals = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signals.append(signal.SIGHUP)
    return {s: signal.signal(s, on_signal) for s in signals}


def _free_name(dest: str) -> tuple[str, int]:
    """``dest``, or if it is taken ``stem.N.ext`` for an N that is not: (name, N or 0).

    A camera that names every photo alike fills --done-dir with ``img.1.jpg``, ``img.2.jpg``,
    ...: the names taken are found by doubling N, then halving the step between the last taken
    and the first free, so the 50,000th copy costs 30 lookups, not 50,000."""
    if not os.path.lexists(dest):
        return dest, 0
    stem, suffix = os.path.splitext(dest)

    def taken(n: int) -> bool:
        return os.path.lexists(f"{stem}.{n}{suffix}")

    low, high = 0, 1  # low: taken (0 is dest itself); high: to try
    while taken(high):
        low, high = high, high * 2
    while high - low > 1:  # low taken, high free: the first free between, if they run on
        middle = (low + high) // 2
        low, high = (middle, high) if taken(middle) else (low, middle)
    return f"{stem}.{high}{suffix}", high


def _in_words(exc: BaseException | None) -> str:
    """What stopped the worker, for the log: an OSError's reason and file, a CsvError's own
    message (written for the operator); anything else (a bug) as Python shows it."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, CsvError):
        return str(exc)
    return repr(exc)


class Watcher:
    """The daemon: build it with a loaded classifier and an open ledger, then :meth:`serve`."""

    def __init__(
        self,
        options: WatchOptions,
        classifier,
        ledger: Ledger,
        stop: threading.Event | None = None,
    ) -> None:
        """``stop``: set it to end :meth:`serve` (e.g. from :func:`stop_on_signals`)."""
        self.options = options
        self.classifier = classifier
        self.ledger = ledger
        self.root = os.path.abspath(options.folder)
        #: What is watched: inotify does not follow a link given as the folder (watchdog adds
        #: its watch with IN_DONT_FOLLOW), so an inbox that was a link saw no event at all.
        #: Events come back in the folder's own spelling (:meth:`_as_given`), as scans do.
        self._watched = os.path.realpath(self.root)
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)
        self.done_dir = (
            self._as_given(os.path.realpath(options.done_dir)) if options.done_dir else None
        )
        self.events: queue.Queue = queue.Queue(MAX_EVENTS)
        self.overflow = threading.Event()
        self.stop = stop or threading.Event()
        self.settler = Settler(options.settle)
        self.ready: deque[tuple[str, Identity, float]] = deque()
        self.scan_dirs: deque[str] = deque([self.root])
        #: Folders below the folder whose files are not classified (hidden ones, --done-dir),
        #: listed only for the folders in them: watchdog watches those too. After scan_dirs.
        self.count_dirs: deque[str] = deque()
        self._scan_iter = None
        self._scan_counting = False  # whether the folder being listed is one of count_dirs
        self._caught_up = False
        self.n_classified = self.n_failed = self.n_caught_up = 0
        #: Folders watched (with --recursive, inotify: a watch each, of a per-user limit):
        #: all below the folder, hidden ones and --done-dir's too, which watchdog watches as
        #: well; fewer again as they are deleted (:meth:`_recount`). Counted from events, so it
        #: may drift; set to the kernel's count when it nears the limit (:meth:`_check_watches`).
        self.n_folders = 1
        self._told_watches = False
        self._watch_limit: int | None = None
        #: The count above which the real watches are read again (:meth:`_check_watches`).
        self._check_above = 0
        #: Folders found by the rescan after dropped events, which replace :attr:`n_folders`
        #: when it ends (None: no rescan), and :attr:`n_caught_up` when it began.
        self._rescan_folders: int | None = None
        self._rescan_from = 0
        #: Files found by a scan, or created whole (`ln`): no close was seen for them (yet).
        self.scanned: set[str] = set()
        #: Files that read as partial, at the version that did, waiting for RETRY_PARTIAL.
        self.partial: dict[str, Identity] = {}
        self.heartbeat = time.monotonic()
        self.error: BaseException | None = None
        #: Whether the observer reports closes after writing (inotify); if not, --settle rules.
        self.close_events = False

    # -- which paths -----------------------------------------------------------------------

    def _in_done_dir(self, path: str) -> bool:
        return self.done_dir is not None and (
            path == self.done_dir or path.startswith(self.done_dir + os.sep)
        )

    def _eligible(self, path: str) -> bool:
        """An image file directly in the folder (or below it, with --recursive)."""
        if not path.startswith(self.root + os.sep) or self._in_done_dir(path):
            return False
        parts = os.path.relpath(path, self.root).split(os.sep)
        if len(parts) > 1 and (not self.options.recursive or any(p.startswith(".") for p in parts)):
            return False
        return is_candidate(parts[-1])

    def _room(self) -> int:
        return MAX_TRACKED - len(self.settler) - len(self.ready)

    # -- events -----------------------------------------------------------------------------

    def _take_events(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        for _ in range(MAX_EVENTS):
            self._on_event(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _as_given(self, path: str) -> str:
        """``path`` under the watched (real) folder, spelled under the folder as given."""
        if self._watched != self.root and (
            path == self._watched or path.startswith(self._watched + os.sep)
        ):
            return self.root + path[len(self._watched) :]
        return path

    def _on_event(self, event) -> None:
        kind, src = event.event_type, self._as_given(os.fsdecode(event.src_path))
        dest = self._as_given(os.fsdecode(event.dest_path)) if kind == "moved" else ""
        if event.is_directory:
            if kind == "moved":
                # One event for the folder, none for its files (moved out of the folder: an
                # archived folder of the day): their entries went on for as long as it ran.
                # (A folder deleted was emptied first, each file with its own event.)
                self._forget_below(src)
            # A folder created or moved in: its files may predate the new watch, so scan it.
            # (One moved out of the folder has no destination here: nothing to scan; scanning
            # where it was logged "cannot list".)
            new = dest if kind == "moved" else src
            scan = self.options.recursive and kind in ("created", "moved") and new
            if scan and self._eligible_dir(new):
                self.scan_dirs.append(new)
            if self.options.recursive:
                self._recount(kind, src, dest)
            return
        if kind in ("deleted", "moved"):
            self.settler.discard(src)
            self.ledger.forget(src)
            self._forget_partial(src)
        if kind == "moved":
            self._saw(dest, 0.0)
        elif kind == "closed":
            self.scanned.discard(src)  # its writer is done with it
            self._saw(src, 0.0)
        elif kind in ("created", "modified") or src not in self.settler:
            self._saw(src, self.options.settle, kind)
        # else an attrib event on a file already waiting: it keeps waiting (cp -p sets the
        # mode before it closes the file)

    def _forget_below(self, folder: str) -> None:
        """Forget the files under ``folder``, which left the folder with it."""
        if not folder.startswith(self.root + os.sep):
            return
        self.ledger.forget_below(folder)
        prefix = folder + os.sep
        for path in [p for p in (*self.scanned, *self.partial) if p.startswith(prefix)]:
            self._forget_partial(path)

    def _recount(self, kind: str, src: str, dest: str) -> None:
        """Keep :attr:`n_folders` to the watches of a folder's event: one more for a folder
        created or moved in, one fewer for one deleted (its watch is freed), none for one
        renamed inside (its watch goes with it) or moved out (watchdog keeps its watch until it
        is deleted, which gives no event; its subfolders' deletions do). Every folder counts,
        hidden ones and --done-dir's (the moves into it make folders) too: watchdog watches
        them all, though their files are not classified."""
        if kind == "moved":  # out: no dest; in: src is not under the folder
            change = int(self._below(dest)) - int(self._below(src)) if dest else 0
        elif kind in ("created", "deleted"):
            change = int(self._below(src)) * (1 if kind == "created" else -1)
        else:
            return
        if change > 0:
            self._count_folder()
        elif change < 0:
            self.n_folders = max(1, self.n_folders - 1)

    def _below(self, path: str) -> bool:
        return path.startswith(self.root + os.sep)  # not "": a move's missing side

    def _eligible_dir(self, path: str) -> bool:
        """A folder whose files are classified (with --recursive)."""
        if not self._below(path):
            return False
        rel = os.path.relpath(path, self.root)
        return not self._in_done_dir(path) and not any(p.startswith(".") for p in rel.split(os.sep))

    def _saw(self, path: str, delay: float, kind: str = "") -> None:
        """A file event: ``path`` is ready after ``delay`` s unchanged (0: complete now), or
        when closed if the event shows a writer at work."""
        if not self._eligible(path):
            return
        if path not in self.settler and self._room() <= 0:
            self.overflow.set()  # too much at once: the rescan after this burst finds it
            return
        try:
            st = os.stat(path)
        except OSError:
            self.settler.discard(path)
            return
        if stat.S_ISREG(st.st_mode):
            # Written to, or created and still empty: wait for the close. (Not any creation:
            # watchdog reports the files already in a new subfolder as created, with no close.)
            writing = kind == "modified" or (kind == "created" and st.st_size == 0)
            if writing and self.close_events:
                delay = max(self.options.settle, WRITE_TIMEOUT)
            elif kind == "created":  # made whole (`ln`, a new subfolder's files): by time
                self.scanned.add(path)
            self.settler.track(path, (st.st_size, st.st_mtime_ns), delay, delay or None)

    # -- catch-up scan --------------------------------------------------------------------

    def _scan_some(self) -> None:
        budget = SCAN_STEP
        while budget > 0 and self._room() > 0:
            if self._scan_iter is None:
                # The folders to classify first; then those only counted.
                self._scan_counting = not self.scan_dirs
                if self.scan_dirs:
                    directory = self.scan_dirs.popleft()
                elif self.count_dirs:
                    directory = self.count_dirs.popleft()
                else:
                    self._scans_done()
                    return
                try:
                    self._scan_iter = os.scandir(directory)
                except OSError as exc:
                    # Nor can watchdog watch what is below it: nothing more to count. Said
                    # only for a folder whose files would be classified.
                    say = log.debug if self._scan_counting else log.warning
                    say("cannot list %s: %s", directory, exc.strerror)
                    continue
            entry = next(self._scan_iter, None)
            if entry is None:
                self._scan_iter.close()
                self._scan_iter = None
                continue
            budget -= 1
            self._scanned(entry)

    def _scanned(self, entry: os.DirEntry) -> None:
        path = entry.path
        if self._scan_counting or entry.name.startswith(".") or self._in_done_dir(path):
            self._count_only(entry)
            return
        try:
            if entry.is_dir(follow_symlinks=False):
                if self.options.recursive:
                    self.scan_dirs.append(path)
                    self._found_folder()
                return
            if not is_candidate(entry.name):
                return
            st = entry.stat()
        except OSError:
            return
        identity = (st.st_size, st.st_mtime_ns)
        if not stat.S_ISREG(st.st_mode) or path in self.settler:
            return
        if self.ledger.is_done(path, identity):
            if self.done_dir:
                self._move_done(path, identity)  # classified, but a crash came before the move
            return
        # Untouched for --settle already: ready now. Not on a network mount, whose mtimes come
        # from the server's clock.
        age = time.time() - st.st_mtime_ns / 1e9
        quiet = age >= self.options.settle and not self.options.poll
        self.settler.track(path, identity, 0.0 if quiet else self.options.settle)
        self.scanned.add(path)
        self.n_caught_up += 1

    def _count_only(self, entry: os.DirEntry) -> None:
        """A hidden folder, --done-dir or a folder below them: watched all the same (watchdog
        walks every folder; links to folders it does not follow), so counted with those below
        it, which are listed for their folders alone. A --done-dir of many files costs a
        listing of its names, in steps, with no stat (the type comes with the name)."""
        if not self.options.recursive or (self._caught_up and self._rescan_folders is None):
            return  # none to count: the folders' events count them
        try:
            if not entry.is_dir(follow_symlinks=False):
                return
        except OSError:
            return
        self.count_dirs.append(entry.path)
        self._found_folder()

    def _found_folder(self) -> None:
        """A folder found by a scan: counted by the catch-up and a rescan, not after (its
        event counts it)."""
        if self._rescan_folders is not None:  # counted afresh, not twice
            self._rescan_folders += 1
        elif not self._caught_up:
            self._count_folder()

    def _count_folder(self) -> None:
        """Count a folder watched; say once when they near the inotify watches a user may
        have: watchdog leaves a folder past them unwatched without a word, and files then
        arriving in it are missed until the next start (a camera that files its shots by the
        hour, with --done-dir, which leaves the emptied folders, reaches it in time)."""
        self.n_folders += 1
        if self._rescan_folders is not None:  # made after the rescan listed its parent, perhaps
            self._rescan_folders += 1
        self._check_watches()

    def _check_watches(self) -> None:
        """Warn (once) if :attr:`n_folders` is over 90% of the limit, and the kernel agrees.

        The count drifts from the real watches: watchdog may report a folder of ``mkdir -p``
        twice (the kernel's event, and its own walk of the new folder), and frees the watch of
        a folder moved out and then deleted without an event. So a count over the line is
        checked against (and replaced by) the watches /proc lists; only where it lists none is
        the count taken as it is. Read only when the count crosses the line, and after a read
        that found fewer, not again until the count is 1% of the limit above what was read
        (a count that hovers at the line reads a big fdinfo once per folder, not per event)."""
        if self._told_watches or not self.close_events:
            return
        if self._watch_limit is None:  # read once, not per folder
            self._watch_limit = inotify_watch_limit() or 0
        limit = self._watch_limit
        if not limit or self.n_folders <= max(0.9 * limit, self._check_above):
            return
        real = inotify_watches()
        if real is not None:
            self.n_folders = real
            if real <= 0.9 * limit:
                self._check_above = real + max(1, limit // 100)
                return
        self._told_watches = True
        log.warning(
            "%d folders watched, of the %d inotify watches a user may have "
            "(fs.inotify.max_user_watches): files in folders past them are missed; "
            "raise it (sysctl), remove old empty folders, or use --poll",
            self.n_folders,
            limit,
        )

    def _scans_done(self) -> None:
        """The scan queue ran dry: the catch-up, or a rescan after dropped events, is over.
        Entries of files that went unseen are pruned (after a rescan they stayed for as long as
        the daemon ran), and after a rescan the folder count is what it found: the folders'
        events were dropped too. (A folder made during it may count twice, one deleted during
        it once too often: never too few.)"""
        rescanned = self._rescan_folders is not None
        if rescanned:
            self.n_folders, self._rescan_folders = self._rescan_folders, None
            # Paths kept until their file's delete event, which may have been dropped too.
            for path in [p for p in (*self.scanned, *self.partial) if not os.path.lexists(p)]:
                self._forget_partial(path)
            self._check_watches()
        if not self._caught_up:
            self._caught_up = True
            self._after_catch_up()
        elif rescanned:
            self._after_rescan()

    def _prune_ledger(self) -> int:
        """Forget the entries of files gone unseen (while the daemon was stopped, or in events
        that were dropped) and write down that they left; returns how many."""
        gone = self.ledger.prune()
        self.ledger.compact()
        self.ledger.flush()
        return gone

    def _after_rescan(self) -> None:
        gone = self._prune_ledger()  # files deleted or moved out while their events were lost
        log.info(
            "rescanned: %s without a row queued, %d %s left%s",
            counted(self.n_caught_up - self._rescan_from, "file"),
            gone,
            "has" if gone == 1 else "have",
            f"; {counted(self.n_folders, 'folder')} watched" if self.options.recursive else "",
        )

    def _after_catch_up(self) -> None:
        gone = self._prune_ledger()  # files moved here, and those gone while it was stopped
        here = len(self.ledger)
        log.info(
            "caught up: %s without a row queued; %s with a row %s still here, %d %s left",
            counted(self.n_caught_up, "file"),
            counted(here, "file"),
            "is" if here == 1 else "are",
            gone,
            "has" if gone == 1 else "have",
        )

    # -- batches --------------------------------------------------------------------------

    def _batch_due(self, now: float) -> bool:
        if not self.ready:
            return False
        return (
            len(self.ready) >= self.options.batch_size
            or now - self.ready[0][2] >= self.options.max_latency
            or self.stop.is_set()
        )

    def _take_batch(self) -> list[tuple[str, Identity]]:
        batch: list[tuple[str, Identity]] = []
        taken: set[str] = set()
        while self.ready and len(batch) < self.options.batch_size:
            path, identity, _ = self.ready.popleft()
            if path in taken or path in self.settler:
                continue  # a newer version is settling
            taken.add(path)
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone before its turn
            current = (st.st_size, st.st_mtime_ns)
            if current != identity:
                self.settler.track(path, current, self.options.settle)
            elif self.ledger.is_done(path, identity):
                if self.done_dir:
                    self._move_done(path, identity)
            else:
                batch.append((path, identity))
        return batch

    def _run_batch(self) -> None:
        batch = self._take_batch()
        if not batch:
            return
        start = time.monotonic()
        paths = [path for path, _ in batch]
        kwargs = {"workers": self.options.workers, "max_pixels": self.options.max_pixels}
        if self.options.faces is None:
            groups: Iterable[list[Result]] = (
                [r] for r in classify_paths(self.classifier, paths, **kwargs)
            )
        else:
            # Alive while a photo is searched too: one 12 MP photo is 2,450 detector views at
            # the default --min-face (3.9 s on one x86 core), longer than WatchdogSec on a small Pi.
            groups = classify_photos(
                self.classifier,
                paths,
                self.options.faces,
                on_decoded=self._beat,
                on_progress=self._beat,
                **kwargs,
            )
        rows = []
        files = []
        for (path, identity), results in zip(batch, groups, strict=True):
            # Alive while files come out (and, with --faces, as each photo is searched): a
            # batch of 16 large photos can take minutes on a Pi, which must not read as a hung
            # worker to systemd's watchdog.
            self._beat()
            first = results[0]
            if not first.ok and first.error != NO_FACE and not os.path.lexists(path):
                log.info("%s: removed before it could be read; no row", path)
                self._forget_partial(path)
                continue
            if self._maybe_partial(path, identity, first.error):
                # Perhaps a writer that paused: tried again once this version has stood still
                # for RETRY_PARTIAL, or sooner, settling as usual, if it changes.
                log.info(
                    "%s: %s; tried again in %g s, or when it changes",
                    path,
                    first.error,
                    RETRY_PARTIAL,
                )
                self.partial[path] = identity
                self.settler.track(path, identity, RETRY_PARTIAL, self.options.settle)
                continue
            self._forget_partial(path)
            rows += [(result, identity) for result in results]
            files.append((first, identity))
        self.ledger.append(rows)
        for first, identity in files:
            if first.ok or first.error == NO_FACE:
                self.n_classified += 1
            else:
                self.n_failed += 1
                log.warning("%s: %s", first.path, first.error)
            if self.done_dir:
                self._move_done(first.path, identity)
        self.ledger.compact()  # the lines of files moved or gone
        self.ledger.flush()  # which files left: a file put back later is a new one
        log.debug("batch of %d in %.3f s", len(rows), time.monotonic() - start)

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    def _maybe_partial(self, path: str, identity: Identity, error: str | None) -> bool:
        """Whether a file's error may be a writer's pause (see RETRY_PARTIAL) not yet waited
        out at this version. An empty file may be so however it completed: a producer may
        create it, close it and fill it later (a placeholder, reopened without O_CREAT)."""
        by_time = self.options.poll or path in self.scanned or error == "empty file"
        return by_time and error in PARTIAL_ERRORS and self.partial.get(path) != identity

    def _forget_partial(self, path: str) -> None:
        self.scanned.discard(path)
        self.partial.pop(path, None)

    def _move_done(self, path: str, identity: Identity) -> None:
        """Rename a classified file into --done-dir (never over another file)."""
        try:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) != identity:
                return  # rewritten since: the new version gets its own row first
            dest = os.path.join(self.done_dir, os.path.relpath(path, self.root))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            dest, n = _free_name(dest)
            os.rename(path, dest)
        except OSError as exc:
            log.warning("cannot move %s to %s: %s", path, self.done_dir, exc.strerror or exc)
            return
        if n:  # the CSV row names the file it was; the log says where it went
            log.info("%s: moved to %s (the name was taken)", path, dest)
        self.ledger.forget(path)

    # -- the worker -----------------------------------------------------------------------

    def _can_rescan(self) -> bool:
        return self.overflow.is_set() and self._room() > MAX_TRACKED // 2

    def _wait_time(self, now: float) -> float:
        if self._batch_due(now) or self._can_rescan():
            return 0.0
        if (self._scan_iter is not None or self.scan_dirs or self.count_dirs) and self._room() > 0:
            return 0.0
        wait = TICK
        due = self.settler.next_due()
        if due is not None:
            wait = min(wait, due - now)
        if self.ready:
            wait = min(wait, self.ready[0][2] + self.options.max_latency - now)
        return max(wait, 0.0)

    def _rescan(self) -> None:
        """Scan the folder again, from the top: events were dropped. What was still queued to
        list lies below it (and is found again), and listing it twice counted its folders twice."""
        self.overflow.clear()
        log.warning("events were dropped (too many at once); rescanning %s", self.root)
        if self._scan_iter is not None:
            self._scan_iter.close()
            self._scan_iter = None
        self.scan_dirs.clear()
        self.count_dirs.clear()
        self.scan_dirs.append(self.root)
        self._rescan_folders = 1  # the folder; those below as the rescan finds them
        self._rescan_from = self.n_caught_up

    def _step(self) -> None:
        now = time.monotonic()
        self.heartbeat = now
        self._take_events(self._wait_time(now))
        if self._can_rescan():
            self._rescan()
        self._scan_some()
        now = time.monotonic()
        for path, identity in self.settler.pop_ready():
            self.ready.append((path, identity, now))
        if self._batch_due(now):
            self._run_batch()

    def work(self) -> None:
        """The worker thread's body: runs until ``stop``, then finishes what is ready."""
        try:
            while not self.stop.is_set():
                self._step()
            if self.ready:
                self._run_batch()  # the batch that was filling; the rest waits for the restart
        except BaseException as exc:  # noqa: BLE001 - reported by the main loop, which exits 1
            self.error = exc
            if isinstance(exc, CsvError | OSError):  # the disk or the CSV: said in words
                log.error("worker failed: %s", _in_words(exc))
            else:  # a bug: its traceback
                log.exception("worker failed")

    # -- the main thread ------------------------------------------------------------------

    def status(self) -> str:
        text = (
            f"{self.n_classified} classified, {self.n_failed} failed; "
            f"{len(self.settler)} settling, {len(self.ready)} queued"
        )
        return text if self._caught_up else text + "; catching up"

    @property
    def poll_interval(self) -> float:
        """Seconds between two scans of the folder with ``poll``."""
        if self.options.poll_interval is not None:
            return self.options.poll_interval
        return max(0.25, min(self.options.settle / 2, 2.0))

    def _start_observer(self):
        from watchdog import events as ev

        if self.options.poll:
            from watchdog.observers.polling import PollingObserver

            observer = PollingObserver(timeout=self.poll_interval)
        else:
            try:
                from watchdog.observers.inotify import InotifyObserver
            except ImportError:  # not Linux: the platform's native observer
                from watchdog.observers import Observer

                observer = Observer()
            else:
                # Full events: a file renamed in from outside the folder is a move (complete
                # at once), not a create (which has to settle).
                observer = InotifyObserver(generate_full_events=True)
                self.close_events = True
                quiet_stop_race()
        # Not FileOpened/FileClosedNoWrite: our own reads would wake us. Not DirModified: noise.
        # (getattr: older watchdog releases lack some kinds; the filter is only an economy.)
        names = ("FileCreated", "FileModified", "FileAttrib", "FileClosed", "FileMoved")
        names += ("FileDeleted", "DirCreated", "DirMoved", "DirDeleted")
        kinds = [getattr(ev, n + "Event") for n in names if hasattr(ev, n + "Event")]
        handler = _Handler(self.events, self.overflow)
        observer.schedule(
            handler, self._watched, recursive=self.options.recursive, event_filter=kinds
        )
        self._overflow_log = _OverflowLog(self.overflow)
        logging.getLogger("watchdog").addHandler(self._overflow_log)
        observer.daemon = True
        observer.start()
        return observer

    def _problem(self, observer, worker: threading.Thread) -> str:
        try:
            st = os.stat(self.root)
        except OSError:
            return f"the watched folder {self.root} is gone"
        if not stat.S_ISDIR(st.st_mode):
            return f"the watched folder {self.root} is gone"
        if (st.st_dev, st.st_ino) != self._root_id:
            # inotify still watches the old folder (moved away): nothing new would be seen.
            return f"the watched folder {self.root} was replaced by another folder"
        if not worker.is_alive():
            return f"the worker stopped: {_in_words(self.error)}"
        if not observer.is_alive() or not all(e.is_alive() for e in observer.emitters):
            return "the file watcher stopped"
        return ""

    def serve(self, notifier: Notifier | None = None) -> int:
        """Watch until SIGTERM/SIGINT/SIGHUP (returns 0) or until a part of the daemon dies (1).

        Raises:
            OSError: the folder cannot be watched (e.g. out of inotify watches: use --poll).
        """
        notifier = notifier or Notifier(None)
        stop = self.stop
        previous = stop_on_signals(stop)
        observer = self._start_observer()
        # Logged before the worker starts, so that it comes before the worker's "caught up".
        log.info(
            "watching %s%s (%s) into %s",
            self.root,
            " and subfolders" if self.options.recursive else "",
            f"polling every {self.poll_interval:g} s" if self.options.poll else "inotify",
            self.ledger.csv_path,
        )
        worker = threading.Thread(target=self.work, name="edgefer-worker", daemon=True)
        worker.start()
        notifier.ready(self.status())
        interval = watchdog_interval()
        code = self._supervise(observer, worker, notifier, interval)
        stop.set()
        notifier.stopping()
        worker.join(None if code == 0 else 10.0)
        observer.stop()
        observer.join(5.0)
        logging.getLogger("watchdog").removeHandler(self._overflow_log)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if code == 0 and self.error is not None:
            code = 1
        log.info("stopped: %s", self.status())
        return code

    def _supervise(
        self, observer, worker: threading.Thread, notifier: Notifier, interval: float | None
    ) -> int:
        tick = min(1.0, interval) if interval else 1.0
        last_status = last_log = time.monotonic()
        shown = logged = ""
        while not self.stop.wait(tick):
            problem = self._problem(observer, worker)
            if problem:
                log.error("%s; exiting so that the service manager restarts edgefer", problem)
                return 1
            now = time.monotonic()
            # Ping only while the worker turns: a hung batch lets systemd's watchdog fire.
            if interval and now - self.heartbeat < 2 * interval:
                notifier.watchdog()
            text = self.status()
            if text != shown and now - last_status >= STATUS_EVERY:
                notifier.status(text)
                shown, last_status = text, now
            if text != logged and now - last_log >= LOG_EVERY:
                log.info("%s", text)
                logged, last_log = text, now
        return 0

"""``edgefer watch``: the command. Imports only Typer here; watchdog and the runtime load on use."""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from edgefer.classifier import MAX_BATCH_SIZE
from edgefer.faceopts import (
    DetectorOption,
    FacesOption,
    MaxFacesOption,
    MinFaceOption,
    face_options,
)
from edgefer.modelopts import MaxPixelsOption, ModelOption, ThreadsOption, TimeOption
from edgefer.preprocess import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from edgefer.rotation import HELP as ROTATE_HELP
from edgefer.rotation import Rotation


def watch(
    folder: Annotated[
        Path,
        typer.Argument(help="Folder that cameras and uploads drop images into.", file_okay=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "--output",
            "-o",
            help="CSV to append rows to (created with its header; a .state file goes beside it).",
            dir_okay=False,
        ),
    ],
    model: ModelOption = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also watch subfolders.")
    ] = False,
    poll: Annotated[
        bool, typer.Option(help="Poll instead of inotify: for CIFS/NFS mounts, which miss events.")
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="With --poll: seconds between scans (default: half of --settle, 0.25-2 s). "
            "Each scan stats every file in the folder: longer costs less CPU on a full inbox "
            "and adds up to that much delay.",
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a file's size and mtime must stay unchanged when no close or rename "
            "says it is complete.",
        ),
    ] = 1.0,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            "-b",
            min=1,
            help=f"Images per batch (at most {MAX_BATCH_SIZE}: more is taken as that).",
        ),
    ] = 16,
    max_latency: Annotated[
        float,
        typer.Option(min=0.0, help="Longest a complete file waits for its batch to fill (s)."),
    ] = 0.5,
    done_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Move classified files here (same filesystem; created if missing).",
        ),
    ] = None,
    rotate: Annotated[str | None, typer.Option(metavar="PERIOD|SIZE", help=ROTATE_HELP)] = None,
    time_column: TimeOption = False,
    threads: ThreadsOption = None,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    faces: FacesOption = False,
    detector: DetectorOption = None,
    min_face: MinFaceOption = None,
    max_faces: MaxFacesOption = None,
    wait_for_folder: Annotated[
        bool,
        typer.Option(
            "--wait-for-folder",
            help="If the folder is missing (a drive or share not mounted yet, or gone until "
            "plugged back in), wait for it instead of exiting 2. For services.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every batch.")] = False,
) -> None:
    """Watch a folder and classify each new image once, appending a row to a CSV.

    A file is classified once complete: closed after writing or renamed into the folder (a file
    being written waits for its close), else when its size and mtime have not changed for
    --settle seconds; hidden and temp files
    (`.*`, `~*`, `*.tmp`, `*.part`, `*.crdownload`) wait until renamed. On start, every file
    without a row is caught up; after a crash (even SIGKILL) each file still ends with exactly
    one row. Runs until SIGTERM/SIGINT/SIGHUP (exit 0 after finishing the current batch); exit 1
    when part of the daemon fails (let systemd restart it); exit 2 for a missing folder (unless
    --wait-for-folder), a model that cannot be loaded, an unwritable CSV, or a CSV written for
    other labels. Speaks systemd's
    notify protocol (Type=notify, WatchdogSec).
    """
    # Imported here: cli imports this module, and `edgefer --help` must not load watchdog.
    from edgefer.classifier import Classifier, ClassifierOptions, ModelError
    from edgefer.cli import fail
    from edgefer.csvout import CsvError
    from edgefer.faces import FaceDetectorMissingError
    from edgefer.ledger import Ledger
    from edgefer.notify import Notifier, setup_logging
    from edgefer.runtime import RuntimeMissingError
    from edgefer.spec import SpecError
    from edgefer.watch import (
        Watcher,
        WatchError,
        WatchOptions,
        check_folders,
        claim_inbox,
        folder_appears,
        stop_on_signals,
        unwatched_images,
    )

    log = logging.getLogger("edgefer.watch")

    if poll_interval is not None and not poll:
        raise fail("--poll-interval is for --poll (inotify has no interval)")
    if out.suffix.lower() in IMAGE_SUFFIXES:
        # In the inbox the daemon took its own CSV for an image, retried every 60 s; as for
        # classify's -o, an image's name is refused wherever it is.
        raise fail(
            f"--out {out} is an image's name: in the watched folder the daemon would take its "
            "own CSV for an image; name the CSV (--out labels.csv)"
        )
    if str(out) == "-" or (out.exists() and not out.is_file()):
        # The rows are cut back and checked against the state at each start: a file's job.
        # "-" was taken as a file of that name in the current folder, a FIFO as EINVAL.
        raise fail(
            f"--out {out}: watch appends to a regular file (its .state goes beside it), not to "
            "standard output, a pipe or a device; give a CSV file and follow it with tail -F"
        )
    try:
        rotation = Rotation.parse(rotate) if rotate is not None else None
        face_opts = face_options(faces, detector, min_face, max_faces)
        if face_opts is not None:
            from edgefer.faces import open_detector

            open_detector(face_opts.detector, num_threads=1).close()
    except (ValueError, OSError, FaceDetectorMissingError, RuntimeMissingError) as exc:
        raise fail(str(exc)) from None
    setup_logging(verbose)
    if batch_size > MAX_BATCH_SIZE:
        # Not a usage error: a unit's options from before the cap (-b 512) would keep the
        # service down after an upgrade (exit 2 is RestartPreventExitStatus).
        log.warning("--batch-size %d is over %d: %d used", batch_size, *[MAX_BATCH_SIZE] * 2)
        batch_size = MAX_BATCH_SIZE
    stop = threading.Event()
    # From here on a stop request during the model load is an exit 0. The handlers before it
    # come back however the command ends: run in-process (CliRunner, a program calling the
    # app), watch's handlers outlived it, and a later Ctrl-C only set a dead daemon's event.
    previous_handlers = stop_on_signals(stop)
    try:
        options = WatchOptions(
            folder=str(folder),
            output=str(out),
            recursive=recursive,
            poll=poll,
            poll_interval=poll_interval,
            settle=settle,
            batch_size=batch_size,
            max_latency=max_latency,
            done_dir=str(done_dir) if done_dir else None,
            max_pixels=max_pixels,
            faces=face_opts,
        )
        notifier = Notifier.from_env()
        inbox_lock: int | None = None
        try:
            # A missing folder fails before the model loads, unless it is to be waited for: then
            # the model is checked first, and the folders and the CSV once the folder is there.
            waiting = wait_for_folder and not folder.is_dir()
            if not waiting:
                check_folders(options)
            classifier = Classifier(
                ClassifierOptions(model=model, num_threads=threads, batch_size=batch_size)
            )
            log.info("model %s (interpreter threads: %d)", classifier.path, classifier.num_threads)
            if waiting:
                if not folder_appears(str(folder), stop, notifier):
                    raise typer.Exit(0)
                check_folders(options)
            inbox_lock = claim_inbox(options)
            ledger = Ledger(
                out, classifier.labels, faces=faces, rotation=rotation, time_column=time_column
            )
        except (
            WatchError,
            ModelError,
            RuntimeMissingError,
            SpecError,
            CsvError,
            ValueError,
            OSError,  # writing a new CSV's header or its state, say
        ) as exc:
            if inbox_lock is not None:  # the CSV could not be opened: the folder is not ours
                os.close(inbox_lock)
            message = str(exc)
            if isinstance(exc, OSError) and exc.strerror:
                message = f"cannot start: {exc.filename or out}: {exc.strerror}"
            # A full disk, a failing disk or a share gone away is not a setup error: exit 1, so
            # that systemd tries again (RestartSec) and the service comes back by itself.
            transient = _transient(exc)
            if transient:
                raise fail(f"{message} ({transient})", code=1) from None
            raise fail(message) from None
        unwatched = unwatched_images(options)
        if unwatched:
            log.warning("images in %s are not watched: add --recursive to classify them", unwatched)
        try:
            code = Watcher(options, classifier, ledger, stop).serve(notifier)
        except OSError as exc:
            raise fail(f"cannot watch {folder}: {exc}; try --poll", code=1) from None
        finally:
            ledger.close()
            classifier.close()
            if inbox_lock is not None:
                os.close(inbox_lock)
        raise typer.Exit(code)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


#: Errors that pass by themselves, and what to say of them.
_TRANSIENT = {
    errno.ENOSPC: "will succeed once space is freed",
    errno.EDQUOT: "will succeed once space is freed",
    errno.EIO: "an I/O error: tried again",
    errno.ESTALE: "a network share's stale handle: tried again",
    errno.ETIMEDOUT: "timed out: tried again",
    errno.ENOTCONN: "a network share not connected: tried again",
}


def _transient(exc: BaseException | None) -> str:
    """What to say if ``exc`` was caused by an error that passes by itself (a full disk, a
    network share gone for a while), else ""."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _TRANSIENT:
            return _TRANSIENT[exc.errno]
        exc = exc.__cause__ or exc.__context__
    return ""

"""The ``edgefer`` command line: parse, call the library, render. Nothing heavy at import time."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from edgefer import __version__
from edgefer.classifier import MAX_BATCH_SIZE, Classifier, ClassifierOptions, ModelError
from edgefer.csvout import CsvError, CsvSink, ReaderGoneError, names_missing_folder, printable
from edgefer.discovery import discover, empty_folders, images_below
from edgefer.faceopts import (
    AnnotateOption,
    DetectorOption,
    FacesOption,
    MaxFacesOption,
    MinFaceOption,
    face_options,
)
from edgefer.faces import FaceDetectorMissingError
from edgefer.modelopts import MaxPixelsOption, ModelOption, ThreadsOption, TimeOption
from edgefer.notify import stderr_is_journal
from edgefer.photos import NO_FACE, classify_photos
from edgefer.pipeline import classify_paths
from edgefer.preprocess import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    Stream,
    lift_pillow_limit,
    optional_formats,
    quiet_format_warnings,
)
from edgefer.runtime import RuntimeMissingError
from edgefer.spec import (
    NORMALIZATIONS,
    SpecError,
    normalization_hint,
    pixel_range,
    read_labels_file,
    read_spec,
)
from edgefer.summary import Summary, counted
from edgefer.watchcmd import watch

if TYPE_CHECKING:
    from edgefer.report import Report

#: Exit codes: every file classified / some files failed (all rows written) / usage or model error.
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
#: The reader of the CSV or summary went away (``| head``): the status a shell reports for a
#: tool that SIGPIPE ended, so ``set -o pipefail`` scripts see what they see from ``cat``.
EXIT_PIPE = 128 + 13  # SIGPIPE
#: How many CSVs a warning of images in several CSVs names (two daemons' rotated CSVs: dozens).
SEVERAL_CSVS_SHOWN = 4

# The commands own their process: --max-pixels alone decides what is too large, and a
# file's row says what its format needs.
lift_pillow_limit()
quiet_format_warnings()

app = typer.Typer(
    help="Facial-expression classification on the edge with quantized TFLite models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
err = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise.

    ``message`` is plain text: paths like ``shots/[2024]/`` are printed as they are, never read
    as Rich markup (``[/x]`` in a folder name used to raise instead of printing the error).
    """
    # Under systemd, journald reads the priority off a "<3>" prefix: `journalctl -p err` then
    # shows why the service stopped, as it shows the daemon's own error lines.
    prefix = "<3>" if stderr_is_journal() else ""
    text = f"{prefix}[bold red]error:[/] {escape(printable(message))}"
    err.print(text, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _reader_gone() -> typer.Exit:
    """Stop quietly once stdout's reader has gone: fd 1 goes to /dev/null, so that Python's last
    flush of what is still buffered there neither fails nor prints a traceback."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # a stdout without a file descriptor (embedded, captured)
        return typer.Exit(EXIT_PIPE)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return typer.Exit(EXIT_PIPE)


class StdoutConsole(Console):
    """stdout, where a reader that goes away (``| head``) ends the command with EXIT_PIPE, as it
    does for a CSV on stdout (Rich's own choice is exit 1: for classify, "some files failed")."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise _reader_gone()


def show(console: Console, renderable: object, min_width: int = 0) -> None:
    """Print a table to a terminal at its width, or ``min_width`` if wider (what a table needs
    to show every count whole: the terminal wraps its lines); to a file, a pipe or a log at the
    table's own width, as wide as that is (unless $COLUMNS says otherwise): folded at 80
    columns, a sha256 or a path no longer matched a ``grep``, and a count was cut to "12…"."""
    width = max(console.width, min_width)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        wide = console.options.update_width(10_000)
        width = max(width, console.measure(renderable, options=wide).maximum)
    # print(width=) cannot go past the console's width: set it, for this table only.
    before, console.width = console._width, width  # noqa: SLF001 (no public way back to auto)
    try:
        console.print(renderable)
    except OSError as exc:  # a full disk, /dev/full (a reader gone is StdoutConsole's)
        if console.stderr:  # nowhere to say it
            raise typer.Exit(EXIT_USAGE) from None
        raise fail(f"cannot write standard output: {exc.strerror or exc}") from None
    finally:
        console._width = before  # noqa: SLF001


def warn(message: str) -> None:
    """Print one warning line to stderr; ``message`` is plain text, as for :func:`fail`."""
    err.print(f"[yellow]warning:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgefer {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Facial-expression classification on the edge with quantized TFLite models."""


LabelsOption = Annotated[
    Path | None,
    typer.Option(
        help="labels.txt for a .tflite without an embedded edgefer spec (one label per line).",
        exists=True,
        dir_okay=False,
    ),
]
NormOption = Annotated[
    # None when not given: a model with a spec ignores it, and a given one is warned of.
    str | None,
    typer.Option(
        help=f"Input range for a model without a spec: {', '.join(NORMALIZATIONS)} (default: 0..1)."
    ),
]


def _load(
    model: Path | None,
    labels: Path | None,
    normalization: str | None,
    threads: int | None,
    batch_size: int = 1,
) -> Classifier:
    """``normalization``: None when not given (``0..1``)."""
    given = normalization is not None
    normalization = normalization if given else "0..1"
    if normalization not in NORMALIZATIONS:
        raise fail(f"--normalization must be one of {', '.join(NORMALIZATIONS)}")
    try:
        label_names = read_labels_file(labels.read_text(encoding="utf-8")) if labels else None
    except UnicodeDecodeError:
        raise fail(f"{labels}: not a UTF-8 text file of labels") from None
    except OSError as exc:
        raise fail(f"cannot read {labels}: {exc.strerror or exc}") from None
    try:
        classifier = Classifier(
            ClassifierOptions(
                model=model,
                labels=label_names,
                normalization=normalization,
                num_threads=threads,
                batch_size=batch_size,
            )
        )
    except (ModelError, RuntimeMissingError, SpecError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    has_spec = read_spec(classifier.model_bytes) is not None
    if label_names is not None and has_spec:
        warn(f"--labels ignored: the model carries its own labels ({', '.join(classifier.labels)})")
    if given and has_spec:
        own = _input_range(classifier)
        warn(f"--normalization ignored: the model carries its own input range ({own})")
    if not has_spec and classifier.input_dtype.kind in "iu":
        levels = np.iinfo(classifier.input_dtype)
        scale, zero_point = classifier.input_quantization
        hint = normalization_hint(
            normalization,
            scale,
            int(zero_point),
            (int(levels.min), int(levels.max)),
            classifier.input_dtype.name,
        )
        if hint is not None:
            warn(hint)
    return classifier


def _input_range(classifier: Classifier) -> str:
    """The values a model's spec gives pixels 0..255: ``0..1``, or one range per channel."""
    spec = classifier.spec
    n = max(len(spec.mean), len(spec.std))  # one shared value, or one per channel
    mean, std = spec.mean * (n // len(spec.mean)), spec.std * (n // len(spec.std))
    ranges = ["{:.3g}..{:.3g}".format(*pixel_range(m, d)) for m, d in zip(mean, std, strict=True)]
    return ranges[0] if len(set(ranges)) == 1 else ", ".join(ranges)  # grey, or RGB alike: one


@app.command()
def classify(
    inputs: Annotated[
        # Strings, not Paths: Path("./-") is "-", which is standard input. Not checked here: an
        # unreadable or missing file gets its error row, as one found in a folder does.
        list[str],
        typer.Argument(
            help="Image files and/or folders of images; '-' for standard input.",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="CSV to write, or '-' for stdout.")],
    model: ModelOption = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into subfolders.")
    ] = False,
    batch_size: Annotated[
        # At most 256, as the library's ClassifierOptions (see MAX_BATCH_SIZE for why).
        int,
        typer.Option("--batch-size", "-b", min=1, max=MAX_BATCH_SIZE, help="Images per invoke."),
    ] = 16,
    threads: ThreadsOption = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Image decoding threads (default: up to 4).")
    ] = None,
    append: Annotated[
        bool, typer.Option(help="Append to an existing CSV, skipping files it already has.")
    ] = False,
    low_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Count predictions below this confidence.")
    ] = 0.5,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    labels: LabelsOption = None,
    normalization: NormOption = None,
    time_column: TimeOption = False,
    faces: FacesOption = False,
    detector: DetectorOption = None,
    min_face: MinFaceOption = None,
    max_faces: MaxFacesOption = None,
    annotate: AnnotateOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Classify face images into expressions and write a CSV of labels and probabilities.

    Folders contribute their image files (hidden files and other extensions are skipped);
    files named explicitly are always tried. With --faces, whole photos are searched for faces
    and each face gets a row. Exit 0: all classified (an image without a face counts as read);
    1: some files failed (each still has a row with its error); 2: usage, model or output error;
    141: the reader of the output went away (`-o - | head`).
    """
    if os.path.splitext(output)[1].lower() in IMAGE_SUFFIXES:
        # `classify -o *.jpg`: the shell made the first photo the output, and the CSV replaced it.
        raise fail(
            f"-o {output} is an image's name: the CSV would replace it; name the CSV "
            "(-o labels.csv), and give the images after it"
        )
    try:
        face_opts = face_options(faces, detector, min_face, max_faces, annotate)
        if face_opts is not None:
            from edgefer.faces import open_detector

            open_detector(face_opts.detector, num_threads=1).close()
        if annotate is not None:
            _check_annotate(annotate, inputs)
    except (ValueError, OSError, FaceDetectorMissingError, RuntimeMissingError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:  # Typer's own answer is a silent exit 130
        raise fail("interrupted; no CSV written", 130) from None
    try:
        classifier = _load(model, labels, normalization, threads, batch_size)
    except KeyboardInterrupt:  # seconds on a Pi
        raise fail("interrupted while loading the model; no CSV written", 130) from None
    # From here on SIGTERM is Ctrl-C: the temp CSV is removed however early the run ends.
    previous_handlers = _interrupt_on_signals()
    n_files = 0  # images done (with --faces, summary counts rows: faces)
    sink: CsvSink | None = None
    try:
        unlistable: list[str] = []
        try:
            # The annotated copies are not inputs: a second run would classify them again.
            skip = [annotate] if annotate is not None else []
            paths = discover(inputs, recursive=recursive, unlistable=unlistable, skip=skip)
        except OSError as exc:
            raise fail(f"cannot list {exc.filename}: {exc.strerror}") from None
        for folder in unlistable:  # no row to carry it: a warning, and exit 1
            warn(f"cannot list {folder}")
        for folder in empty_folders(inputs, paths, recursive):
            # A dataset of class folders given without -r (FER2013's val/, say): say why.
            hint = (
                ": they are in subfolders, add -r" if not recursive and images_below(folder) else ""
            )
            warn(f"no images found in {folder}{hint}")
        sink = CsvSink(
            output, classifier.labels, append=append, faces=faces, time_column=time_column
        )
        # A pipe's name (/dev/fd/63, /dev/stdin) says nothing of what comes through it.
        todo = [p for p in paths if isinstance(p, Stream) or not sink.seen(p)]
        unresolved = sink.unresolved or next(
            (t for p in todo if not isinstance(p, Stream) and (t := sink.named_from_elsewhere(p))),
            None,
        )
        if unresolved is not None:
            warn(
                f"{output} names files relative to another folder ({unresolved} is not "
                f"found from {os.getcwd()}): files already in it may get rows again; run from "
                "the folder it was written in"
            )
        summary = Summary(
            classifier.labels,
            low_confidence,
            skipped=len(paths) - len(todo),
            faces=faces,
            unlisted=len(unlistable),
            model=classifier.path.name,
        )
        progress = Progress(
            TextColumn("classifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            # Not over CSV rows going to the same terminal: they would land on the bar.
            disable=not err.is_terminal or quiet or (sink.to_stdout and _stdout_is_terminal()),
        )
        start = time.perf_counter()
        with sink, progress:
            task = progress.add_task("classify", total=len(todo))
            if face_opts is None:
                groups = (
                    [r] for r in classify_paths(classifier, todo, workers, max_pixels=max_pixels)
                )
            else:
                groups = classify_photos(classifier, todo, face_opts, workers, max_pixels)
            for results in groups:
                sink.write_image(results)
                for result in results:
                    summary.add(result)
                n_files += 1
                # A copy of a photo without a face too: that is where a missed face is seen.
                copy = annotate is not None and results[0].error in (None, NO_FACE)
                if copy and not _annotate(results, annotate, max_pixels):
                    annotate = None  # the folder takes no copies: one warning is enough
                progress.advance(task)
    except ReaderGoneError:
        raise _reader_gone() from None
    except CsvError as exc:
        raise fail(str(exc)) from None
    except RuntimeError as exc:
        if "can't start new thread" not in str(exc):
            raise
        # Under a tight memory limit (`ulimit -v`) the decoding threads' stacks do not fit.
        raise fail("out of memory starting the decoding threads; try --workers 1") from None
    except (KeyboardInterrupt, _Terminated) as exc:
        if sink is not None:
            sink.close(commit=False)  # a no-op if the with block closed it
        if sink is None or not sink.keeps_partial:
            kept = "no CSV written"
        elif sink.to_stdout:
            kept = "rows so far went to stdout"
        else:
            kept = "rows so far were appended" if append else f"rows so far went to {output}"
        code = 128 + exc.signum if isinstance(exc, _Terminated) else 130
        raise fail(f"interrupted after {counted(n_files, 'file')}; {kept}", code) from None
    finally:
        for signum, handler in previous_handlers.items():
            if handler is not None:  # None: set outside Python, not ours to put back
                signal.signal(signum, handler)
    # Rendered to stdout unless the CSV goes there; progress only on an interactive terminal.
    out = err if sink.to_stdout else StdoutConsole()
    summary.seconds = time.perf_counter() - start
    classifier.close()
    if not quiet:
        show(out, summary.render())
    raise typer.Exit(EXIT_FAILURES if summary.n_failed or summary.unlisted else EXIT_OK)


class _Terminated(Exception):
    """SIGTERM during a run (``timeout``, ``kill``, a stopping service), or SIGHUP (the SSH
    session or terminal closed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (OSError, ValueError):  # closed, or a stream without a descriptor
        return False


def _interrupt_on_signals() -> dict:
    """Make SIGTERM, and SIGHUP where it is not ignored (``nohup``), end the run like Ctrl-C
    does (temp CSV removed, exit 143 / 129); returns the previous handlers. Python's default
    would kill the process and leave the temp file. The first of these signals or Ctrl-C
    ignores the others, so that a second one cannot cut the clean-up short (it left the temp
    file, or a traceback, 5 times in 200 double signals a few ms apart)."""
    previous: dict = {}

    def on_signal(signum: int, _frame: object) -> None:
        for other in previous:
            signal.signal(other, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signum)

    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (&)
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_signal)
    except ValueError:  # called from another thread (an embedding program): leave it be
        pass
    return previous


def _check_annotate(folder: Path, inputs: list[str]) -> None:
    """Refuse an --annotate folder that is a folder to classify (its copies would be inputs of
    the next run: classified, annotated and copied again) or that cannot be created; it is
    created with the first copy, so that a run refused for another reason leaves nothing.

    Raises:
        ValueError: either of the above.
    """
    target = os.path.abspath(folder)
    if os.path.lexists(target) and not os.path.isdir(target):  # a broken link, say
        raise ValueError(f"--annotate {folder} is not a folder")
    real = os.path.realpath(target)
    if any(os.path.isdir(i) and os.path.realpath(i) == real for i in inputs):
        raise ValueError(
            f"--annotate {folder} is a folder to classify: its copies would be classified "
            "on the next run; give another folder"
        )
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"cannot create --annotate {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) and existing != target:
        raise ValueError(f"cannot create --annotate {folder}: {existing} is not writable")
    if existing == target and not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into --annotate {folder}: permission denied")


def _annotate(results: list, folder: Path, max_pixels: int) -> bool:
    """Write the annotated copy of one image; a failure is a warning, not a lost run. Returns
    False when the folder cannot take copies (a full or read-only disk): then the copies stop,
    with one warning, not one per image."""
    from edgefer.faces import annotate, annotated_name
    from edgefer.preprocess import ImageError

    path = results[0].path
    boxes = [(r.box, f"{r.face}: {r.label} {r.confidence:.2f}") for r in results if r.box]
    try:
        folder.mkdir(parents=True, exist_ok=True)  # here: a run that fails early leaves none
        annotate(path, boxes, folder / annotated_name(path), max_pixels)
    except ImageError as exc:  # this image (it changed since it was classified, say)
        warn(f"cannot annotate {path}: {exc}")
    except OSError as exc:
        warn(f"cannot write annotated copies to {folder}: {exc.strerror or exc}; no more copies")
        return False
    return True


def _plain_row(table: Table, *cells: str) -> None:
    """A table row of plain text: paths, labels and model metadata are never Rich markup (nor
    control characters)."""
    table.add_row(*(Text(printable(cell)) for cell in cells))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@app.command()
def info(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="A .tflite model or a shipped model's name (default: $EDGEFER_MODEL, else the "
            "shipped default)."
        ),
    ] = None,
    model_option: ModelOption = None,
    labels: LabelsOption = None,
    normalization: NormOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Show a model's labels, input, quantization, size, sha256 and the runtime in use."""
    if model is not None and model_option is not None:
        raise fail("give the model once: as an argument or with --model")
    model = model or model_option  # --model as for classify and watch
    classifier = _load(model, labels, normalization, threads)
    spec = classifier.spec
    table = Table(show_header=False, title="edgefer model", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # a sha256 or path cut with "…" could not be compared
    _plain_row(table, "file", str(classifier.path))
    _plain_row(table, "size", f"{len(classifier.model_bytes):,} bytes")
    _plain_row(table, "sha256", _sha256(classifier.model_bytes))
    _plain_row(table, "name", spec.name or "-")
    _plain_row(table, "labels", ", ".join(spec.labels))
    _plain_row(
        table,
        "input",
        f"{spec.input_size[0]}x{spec.input_size[1]}x{spec.channels} "
        f"({'grey' if spec.channels == 1 else 'RGB'}), {classifier.input_dtype.name}, "
        f"quantization {classifier.input_quantization}",
    )
    mean, std = ", ".join(map(str, spec.mean)), ", ".join(map(str, spec.std))
    _plain_row(table, "normalization", f"(pixel - [{mean}]) / [{std}], pixels 0..255")
    out_q = classifier.output_quantization
    _plain_row(
        table, "output", f"{spec.output}, {classifier.output_dtype.name}, quantization {out_q}"
    )
    _plain_row(table, "format", classifier.quantization())
    _plain_row(table, "runtime", f"{classifier.runtime.name} {classifier.runtime.version}")
    _plain_row(table, "threads", str(classifier.num_threads))
    _plain_row(table, "phone photos", optional_formats())
    for key, value in sorted(spec.metadata.items()):
        _plain_row(table, key, _readable(value))
    show(StdoutConsole(), table)
    classifier.close()


@app.command("summary")
def summary_command(
    csvs: Annotated[
        list[str],  # not Paths: Path("./-") is "-", standard input
        typer.Argument(
            help="CSVs written by classify or watch (labels.csv and the ones --rotate put "
            "aside: labels*.csv); '-' for standard input.",
            show_default=False,
            metavar="CSV",
        ),
    ],
    by: Annotated[
        str | None,
        typer.Option(
            metavar="hour|day|week|month",
            help="Also count per period (needs the time column: classify or watch --time).",
        ),
    ] = None,
    low_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Count predictions below this confidence.")
    ] = 0.5,
) -> None:
    """Print the summary of CSVs already written: per label, failures, and per period.

    For a watch daemon's CSV (which may be being written to: a row not yet complete is left
    out), or to look again at a classify run. All the CSVs must be for the same labels. Every
    row is counted: images in more than one CSV (one folder classified by each model) are
    counted in each, with a warning; summarise each model's CSVs apart. A daemon's CSV and
    those --rotate put aside beside it count as one CSV for this.
    """
    from edgefer.report import PERIODS, Report

    if by is not None and by not in PERIODS:
        raise fail(f"--by {by}: expected one of {', '.join(PERIODS)}")
    report = Report(low_confidence, by)
    for path in csvs:
        try:
            if path == "-":  # `... | summary -`
                report.read("/dev/stdin", "standard input")
            else:
                report.read(path)
        except CsvError as exc:
            raise fail(str(exc)) from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a CSV written by edgefer"
            raise fail(f"cannot read {path}: {reason}") from None
    if by is not None and not report.timed:  # a timed CSV without rows yet is no error
        raise fail(f"--by {by}: no CSV has a time column (write the CSV with --time)")
    console = StdoutConsole()
    show(console, report.render(), report.min_width(console))
    _warn_in_several(report)


def _warn_in_several(report: Report) -> None:
    """Say so when images are in more than one CSV: the CSV does not name its model, and the
    shipped models have the same labels, so one folder classified by each was counted twice.
    Of relative paths, say paths: two CSVs' photos/x.jpg are two images if they were written
    in two folders, which no CSV records."""
    images, csvs = report.in_several()
    if not images:
        return
    shown = ", ".join(csvs[:SEVERAL_CSVS_SHOWN])
    if len(csvs) > SEVERAL_CSVS_SHOWN:
        shown += f" and {len(csvs) - SEVERAL_CSVS_SHOWN} more"
    are = "s are" if images != 1 else " is"
    advice = (
        "if these CSVs are one folder classified by two models (a CSV does not name its "
        "model), summarise each model's CSVs apart"
    )
    if not report.in_several_by_relative_path():
        warn(f"{images} image{are} in more than one CSV ({shown}), and counted in each: {advice}")
        return
    warn(
        f"{images} path{are} in more than one CSV ({shown}), and counted in each; a relative "
        "path is read from the current folder, as a CSV does not say where it was written: the "
        f"same relative path written in two folders is two images. I{advice[1:]}"
    )


def _readable(value: object, nested: bool = False) -> str:
    """A provenance value as a person reads it: 0.6946 for 0.6946224575090555, 137,800,320,
    ``key value`` pairs for a dict, a list comma-separated (bracketed inside another)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1 else f"{value:.4g}"
    if isinstance(value, dict):
        text = ", ".join(f"{k} {_readable(v, True)}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        text = ", ".join(_readable(v, True) for v in value)
    else:
        return str(value)
    return f"[{text}]" if nested else text


@app.command()
def convert(
    model: Annotated[Path, typer.Argument(help="A trained Keras model (.keras, or a legacy .h5).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The .tflite file to write.")],
    quantize: Annotated[
        str, typer.Option(help="none, float16, dynamic (int8 weights) or int8 (full integer).")
    ] = "int8",
    calibration: Annotated[
        Path | None,
        typer.Option(help="Folder of training images (`<label>/<image>`) to calibrate int8."),
    ] = None,
    calibration_size: Annotated[
        int, typer.Option(min=1, help="Calibration images, stratified over labels.")
    ] = 300,
    validate: Annotated[
        Path | None,
        typer.Option(help="Labelled folder for the Keras-vs-TFLite parity report."),
    ] = None,
    max_drop: Annotated[
        float, typer.Option(help="Exit 1 when TFLite loses more accuracy points than this.")
    ] = 1.0,
    spec: Annotated[
        Path | None, typer.Option(help="Model spec JSON (default: spec.json beside the model).")
    ] = None,
    # No --no-force: its column cut --calibration-size to "--calibration-si…" at 80 columns.
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file.")
    ] = False,
    threads: ThreadsOption = None,
) -> None:
    """Convert a Keras model to a self-describing TFLite model, optionally quantized.

    Needs TensorFlow (pip install "edgefer[train]"). Exit 0: written (and within --max-drop);
    1: written, but quantization lost more than --max-drop points; 2: nothing written.
    """
    from edgefer.convert import ConvertError
    from edgefer.convert import convert as run_convert
    from edgefer.runtime import default_threads

    if names_missing_folder(output):
        raise fail(f"output directory does not exist: {output}")
    if calibration is not None and quantize != "int8":
        warn(f"--calibration is for --quantize int8; {quantize} does not use it")
    ctrl_c: list[bool] = []  # set by the SIGINT handler
    try:
        with _converter_scratch(ctrl_c):
            result = run_convert(
                model,
                Path(output),
                quantize,
                calibration,
                calibration_size,
                validate,
                spec,
                force,
                threads or default_threads(),
            )
    except (KeyboardInterrupt, Exception) as exc:
        # Ctrl-C inside TensorFlow's C code can come out as another error (a SystemError
        # "returned a result with an exception set", or wrapped by the converter as
        # "conversion failed: ..."): after a Ctrl-C, it is the Ctrl-C.
        if ctrl_c or isinstance(exc, KeyboardInterrupt):
            raise fail("interrupted; nothing written", 130) from None
        if isinstance(exc, ConvertError):
            raise fail(str(exc)) from None
        if isinstance(exc, OSError) and exc.strerror:  # a data folder it may not list, say
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{exc.strerror}") from None
        raise
    console = StdoutConsole()
    console.print(
        Text(printable(f"wrote {result.output} ({result.size:,} bytes, {quantize})")),
        soft_wrap=True,
    )
    _warn_skipped("calibration", result.calibration_skipped)
    if result.calibration_missing:
        warn(
            f"calibration: no folder for {', '.join(result.calibration_missing)} in {calibration}; "
            "the int8 ranges were set on the other labels' images only"
        )
    parity = result.parity
    if parity is None:
        return
    _warn_skipped("validation", parity.skipped)
    table = Table(title=f"parity on {counted(parity.n_images, 'image')}", title_justify="left")
    for column in ("", "Keras", "TFLite"):
        table.add_column(column, justify="right")
    table.add_row("accuracy", f"{parity.keras_accuracy:.4f}", f"{parity.tflite_accuracy:.4f}")
    table.add_row("size (bytes)", f"{parity.keras_bytes:,}", f"{parity.tflite_bytes:,}")
    table.add_row(
        "ms / image", f"{parity.keras_ms_per_image:.2f}", f"{parity.tflite_ms_per_image:.2f}"
    )
    table.add_row("top-1 agreement", "", f"{parity.agreement:.4f}")
    table.add_row("max |Δp|", "", f"{parity.max_abs_diff:.4f}")
    table.add_row("accuracy drop (points)", "", f"{parity.drop_points:+.2f}")
    show(console, table)
    if parity.drop_points > max_drop:
        err.print(
            f"[bold red]quantization lost {parity.drop_points:.2f} points (> {max_drop})[/]: "
            "try a larger --calibration-size, or quantization-aware fine-tuning "
            "(tensorflow-model-optimization) before converting",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILURES)


@contextlib.contextmanager
def _converter_scratch(ctrl_c: list[bool]) -> Iterator[None]:
    """Temporary files (TensorFlow's SavedModel, twice the model's size) go to a folder of
    this run's, removed at the end, and on SIGTERM at once, with exit 143. A Ctrl-C is
    noted in ``ctrl_c`` before it is raised as usual.

    Python's default SIGTERM left the SavedModel in /tmp; raising into the converter, as
    classify's handler does, ended in the converter's own errors instead (an IndexError,
    "'NoneType' object is not callable")."""
    scratch = tempfile.mkdtemp(prefix="edgefer-convert-")
    stderr = os.dup(2)  # the converter's chatter is sent to /dev/null (edgefer._quiet) at times

    def on_sigterm(_signum: int, _frame: object) -> None:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):  # os._exit flushes nothing: write it out directly
            os.write(stderr, b"error: interrupted; nothing written\n")
        os._exit(128 + signal.SIGTERM)

    def on_sigint(signum: int, frame: object) -> None:
        ctrl_c.append(True)
        signal.default_int_handler(signum, frame)

    previous_dir, tempfile.tempdir = tempfile.tempdir, scratch
    try:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm)}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (&)
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (an embedding program): leave signals be
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        tempfile.tempdir = previous_dir
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(stderr)


def _warn_skipped(use: str, skipped: list[tuple[Path, str]]) -> None:
    """A warning naming how many of ``convert``'s images could not be read, and the first."""
    if skipped:
        path, why = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        warn(f"{len(skipped)} {use} image(s) could not be read, left out: {path}: {why}{more}")


app.command()(watch)


def main() -> None:
    """Console-script entry point."""
    # Summaries and messages to a terminal or log that is not UTF-8 (a Latin-1 locale): a name
    # it cannot show comes out as \\xNN, not as a UnicodeEncodeError ending the command.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except KeyboardInterrupt:  # outside a command (Typer answers one inside it, silently)
        raise SystemExit(fail("interrupted", 130).exit_code) from None

"""``python -m train``: fit, average, evaluate, evaluate-csv, robustness, baselines, report, archs,
from-torch. Parses, calls, prints."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from edgefer.preprocess import lift_pillow_limit

lift_pillow_limit()  # a dataset's images are held to edgefer's own limit, as on the device

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Train, evaluate and compare edgefer models (the workstation side)."""


def _log(message: str) -> None:
    # Plain, flushed lines: the runs go to nohup'd log files that are tailed while they grow.
    print(message, flush=True)


def _fail(message: object) -> typer.Exit:
    """Print ``error: message`` to stderr; raise the returned exit (status 2, a usage error)."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _size(text: str) -> tuple[int, int]:
    # Whole-string match: "96x" (or " 96", "+96") passed int() and trained at a size not typed.
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text.lower(), re.ASCII)
    size = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
    if min(size) < 1:  # 0 was a ZeroDivisionError in Pillow's resize, after the data listing
        raise _fail(f"--size must be N or HxW (48, 24x40), not {text!r}")
    return size


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _fail(f"--classes names {', '.join(repeated)} more than once")
    return names


def _json(text: str, option: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{option} is not JSON ({exc.msg}): {text}") from None
    if not isinstance(value, dict):
        raise _fail(f"{option} must be a JSON object, not {text}")
    return value


@contextmanager
def _torch_errors() -> Iterator[None]:
    """What the commands that copy between Keras and PyTorch raise, as usage errors."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:  # RuntimeError: torch's weight-shape mismatch
        raise _fail(exc) from None
    except ModuleNotFoundError as exc:
        raise _fail(f"{exc.name} is not installed (pip install torch)") from None


def _augment(preset: str, args: str):
    from train.augment import PRESETS

    if preset not in PRESETS:
        raise _fail(f"--augment must be one of {', '.join(PRESETS)}, not {preset!r}")
    try:
        return replace(PRESETS[preset], **_json(args, "--augment-args"))
    except (TypeError, ValueError) as exc:
        raise _fail(f"--augment-args: {exc}") from None


def _check_fit_inputs(data_dir: Path, teachers: list[Path], init: Path | None) -> None:
    """What can be checked before the data are loaded and the model is built."""
    if not data_dir.is_dir():
        raise _fail(f"DATA_DIR is not a folder: {data_dir}")
    for teacher in teachers:
        if not teacher.is_file():
            raise _fail(f"--teacher must be a .keras, .tflite or .npy file: {teacher}")
    if init is not None and (not init.is_file() or init.suffix != ".keras"):
        raise _fail(f"--init must be a trained .keras model: {init}")


def _check_results(results: Path) -> None:
    """A --results that is a folder or another file is refused before the work, not after it."""
    from train.results import check_table

    try:
        check_table(results)
    except ValueError as exc:
        raise _fail(exc) from None


#: fit options that still act with --resume; every other one is the run's config.json's.
RESUME_OPTIONS = frozenset({"out", "threads", "resume", "stop_after", "report", "results"})


def _warn_ignored_on_resume(ctx: typer.Context) -> None:
    # By name: Typer releases differ in where click's ParameterSource lives (0.29 vendors it).
    given = [
        name
        for name in ctx.params
        if name not in RESUME_OPTIONS
        and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    ]
    if given:
        names = ", ".join("--" + n.replace("_", "-") for n in given)
        _log(f"warning: {names} ignored with --resume: the run goes on as its config.json says")


@app.command()
def fit(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Argument(help="train/+val/ folders or one labelled folder")
    ] = None,
    out: Annotated[Path, typer.Option(help="run folder (checkpoints, model.keras, logs)")] = Path(
        "runs/exp1"
    ),
    arch: Annotated[str, typer.Option(help="edge or seed")] = "edge",
    arch_args: Annotated[
        str, typer.Option(help='JSON kwargs for the architecture, e.g. {"widths": [32, 64, 128]}')
    ] = "{}",
    size: Annotated[str, typer.Option(help="input size, 48 or HxW")] = "48",
    channels: Annotated[int, typer.Option(help="1 grey, 3 RGB")] = 1,
    classes: Annotated[
        str, typer.Option(help="comma-separated label subset, in output order")
    ] = "",
    epochs: Annotated[
        int, typer.Option(help="planned epochs (the cosine schedule spans them)")
    ] = 60,
    batch_size: int = 64,
    optimizer: Annotated[str, typer.Option(help="adamw or adam")] = "adamw",
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    schedule: Annotated[str, typer.Option(help="cosine (with warmup) or constant")] = "cosine",
    warmup_epochs: int = 2,
    label_smoothing: float = 0.1,
    class_weight_power: Annotated[
        float, typer.Option(help="0 none, 0.5 sqrt-balanced, 1 balanced")
    ] = 0.5,
    augment: Annotated[
        str, typer.Option(help="preset: none, report (flip, rot 10, zoom 10%), full")
    ] = "full",
    augment_args: Annotated[
        str, typer.Option(help='JSON overrides, e.g. {"mixup": 0.2, "erase": 0}')
    ] = "{}",
    patience: Annotated[int, typer.Option(help="early-stopping patience in epochs (0 off)")] = 20,
    seed: Annotated[int, typer.Option(help="seed of the weights, shuffling and augmentation")] = 0,
    split_seed: Annotated[
        int, typer.Option(help="seed of one folder's 70/15/15 split (not --seed's)")
    ] = 0,
    dedupe: Annotated[bool, typer.Option(help="drop train images duplicated in val/test")] = True,
    limit: Annotated[
        int, typer.Option(help="use at most N images per split, only those decoded (timing runs)")
    ] = 0,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(
            help="a .keras or .tflite model to distil from (soft targets), or a .npy of "
            "train.torchkd's teachers' predictions; repeat for an ensemble"
        ),
    ] = None,
    teacher_weight: Annotated[
        float, typer.Option(help="share of the teacher's soft target in each label")
    ] = 0.5,
    teacher_temperature: Annotated[
        float, typer.Option(help="soften (>1) the teacher's probabilities as p**(1/T)")
    ] = 2.0,
    teacher_online: Annotated[
        bool,
        typer.Option(help="run the teachers on each augmented batch, not once per image"),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(help="float32, or mixed_bfloat16 (about 2x faster on AVX512-BF16 CPUs)"),
    ] = "float32",
    swa_epochs: Annotated[
        int,
        typer.Option(help="hold the LR at --swa-lr-ratio x lr for the last N epochs, keep them"),
    ] = 0,
    swa_lr_ratio: float = 0.25,
    keep_from: Annotated[
        int, typer.Option(help="keep every epoch's checkpoint from this epoch on (for average)")
    ] = 0,
    init: Annotated[
        Path | None,
        typer.Option(help="start from this model.keras's weights (same arch; fresh schedule)"),
    ] = None,
    grow: Annotated[
        bool,
        typer.Option(help="--init may be a part of --arch-args' network: new layers start fresh"),
    ] = False,
    threads: Annotated[int, typer.Option(help="TensorFlow intra-op threads")] = 2,
    resume: Annotated[
        bool, typer.Option(help="continue the run in --out from its last epoch")
    ] = False,
    stop_after: Annotated[int, typer.Option(help="stop after this epoch (resume later)")] = 0,
    report: Annotated[
        bool, typer.Option(help="evaluate, plot and add a results row at the end")
    ] = True,
    results: Annotated[
        Path, typer.Option(help="results table the run's row is added to (with --report)")
    ] = Path("docs/results.md"),
) -> None:
    """Train a model; checkpoints every epoch into --out, resumable with --resume."""
    if resume:
        _warn_ignored_on_resume(ctx)
    if report:
        _check_results(results)
    from train.tfenv import set_threads

    set_threads(threads, 2)
    from train.config import FitConfig
    from train.fit import fit as run_fit

    if resume:
        if not (out / "config.json").exists():
            raise _fail(f"no run to resume in {out}")
        cfg = FitConfig.load(out)
    else:
        if data_dir is None:
            raise typer.BadParameter("DATA_DIR is required unless --resume")
        _check_fit_inputs(data_dir, list(teacher or ()), init)
        augment_cfg = _augment(augment, augment_args)
        try:
            cfg = FitConfig(
                # Absolute: report, split, average and --resume read it from any directory.
                data_dir=str(data_dir.resolve()),
                arch=arch,
                arch_kwargs=_json(arch_args, "--arch-args"),
                input_size=_size(size),
                channels=channels,
                classes=_classes(classes),
                epochs=epochs,
                batch_size=batch_size,
                optimizer=optimizer,
                lr=lr,
                weight_decay=weight_decay,
                schedule=schedule,
                warmup_epochs=warmup_epochs,
                label_smoothing=label_smoothing,
                class_weight_power=class_weight_power,
                augment=augment_cfg,
                patience=patience,
                seed=seed,
                split_seed=split_seed,
                dedupe=dedupe,
                limit=limit,
                teacher=",".join(str(t) for t in teacher or ()),
                teacher_weight=teacher_weight,
                teacher_temperature=teacher_temperature,
                teacher_online=teacher_online,
                precision=precision,
                keep_from=keep_from,
                swa_epochs=swa_epochs,
                swa_lr_ratio=swa_lr_ratio,
                init=str(init.resolve()) if init else "",
                grow=grow,
            )
        except ValueError as exc:  # FitConfig's checks: one line, exit 2
            raise _fail(exc) from None
    from edgefer.classifier import ModelError
    from edgefer.spec import SpecError

    try:
        state = run_fit(cfg, out, resume=resume, log=_log, stop_after=stop_after)
    except (FileExistsError, FileNotFoundError, ValueError, ModelError, SpecError) as exc:
        raise _fail(exc) from exc
    if report and (state["epoch"] >= cfg.epochs or state.get("stopped_early")):
        from train.report import report_run  # imported late: a long run picks up the current code

        report_run(out, log=_log, results=results, notes=False)  # fit has logged them


def _default_eval_dir(model: Path, data_dir: Path, tta: bool) -> Path:
    """``eval-<data folder>[-tta]`` beside the model, unless that holds an evaluation of another
    folder of the same name (fit's own ``eval-val``): then ``eval-<parent>-<folder>``."""
    suffix = "-tta" if tta else ""
    out = model.parent / f"eval-{data_dir.name}{suffix}"
    metrics = out / "metrics.json"
    if metrics.exists():
        recorded = json.loads(metrics.read_text()).get("data")  # none in fit's own evals
        if not recorded or Path(recorded).resolve() != data_dir.resolve():
            out = model.parent / f"eval-{data_dir.resolve().parent.name}-{data_dir.name}{suffix}"
    return out


#: A saved model and a folder of ``<label>/<images>``, as evaluate and calibrate take them.
KerasModelArg = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="model.keras (spec.json beside it)")
]
LabelledDirArg = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, help="folder of <label>/<images>")
]
#: --split-seed of the commands that split a folder as a fit run did (fit's own says more).
SplitSeedOption = Annotated[
    int, typer.Option(help="seed of one folder's 70/15/15 split, as fit's --split-seed")
]


@app.command()
def evaluate(
    model: KerasModelArg,
    data_dir: LabelledDirArg,
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="output folder (default: beside the model, eval-<dir>)"),
    ] = None,
    tta: Annotated[bool, typer.Option(help="average with the mirror image (flip TTA)")] = False,
    threads: int = 2,
) -> None:
    """Accuracy, macro-F1, per-class stats, confusion/sample PNGs and metrics.json for a folder."""
    from train.tfenv import set_threads

    set_threads(threads, 2)
    from train.evaluate import evaluate_dir, format_report

    out = out or _default_eval_dir(model, data_dir, tta)
    try:
        metrics = evaluate_dir(model, data_dir, out, tta)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from exc
    _log(format_report(metrics))
    _log(f"wrote {out}/metrics.json, confusion.png, samples.png")


@app.command("compare-csv")
def compare_csv(
    csv_a: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="model A's CSV")],
    csv_b: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="model B's CSV")],
) -> None:
    """Two `edgefer classify` CSVs of the same labelled folders: is A's accuracy different from
    B's beyond chance? (discordant images, exact McNemar test; true label = the class folder
    each image is in)."""
    from train.csveval import CsvFormatError, compare_rows, read_results

    try:
        result = compare_rows(read_results(csv_a), read_results(csv_b))
    except CsvFormatError as exc:
        raise _fail(exc) from exc
    if result["only_in_a"] or result["only_in_b"]:
        _log(
            f"warning: images scored in only one CSV are left out: {result['only_in_a']} in A, "
            f"{result['only_in_b']} in B"
        )
    _log(
        f"images={result['images']}  A {result['accuracy_a']:.4f}  B {result['accuracy_b']:.4f}  "
        f"right only for A {result['only_a_right']}, only for B {result['only_b_right']}  "
        f"McNemar p={result['mcnemar_p']:.3f}  top-1 agreement {result['top1_agreement']:.3f}"
    )


@app.command()
def robustness(
    data_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="folders named like the labels")
    ],
    model: Annotated[
        Path | None,
        typer.Option(help=".tflite model, or a shipped one by name (default: the default model)"),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="also run this model (a path or a shipped name) on the same images: its "
            "accuracy, the images right only for one, McNemar's p"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, help="also write the rows as JSON here")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the noise and the shift directions")] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="a random sample of this many images")
    ] = None,
    threads: int = 2,
) -> None:
    """Accuracy of a converted model under camera conditions (blur, noise, JPEG, exposure,
    mirroring, framing, low resolution), each applied to every image of labelled folders."""
    from edgefer.classifier import ModelError
    from edgefer.shipped import model_path
    from train.robustness import format_rows, measure

    model = model_path(model)
    other = model_path(against) if against is not None else None
    try:
        rows = measure(model, data_dir, threads=threads, seed=seed, limit=limit, against=other)
    except (ModelError, ValueError) as exc:
        raise _fail(exc) from exc
    _log(f"model {model}" + (f" against {other}" if other else "") + f", images under {data_dir}")
    _log(format_rows(rows))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": str(model), "against": str(other) if other else None, "rows": rows}
        out.write_text(json.dumps(payload, indent=2) + "\n")
        _log(f"wrote {out}")


@app.command("evaluate-csv")
def evaluate_csv(
    csv_path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="edgefer classify output")
    ],
    labels_from_parent_dir: Annotated[
        bool,
        typer.Option(
            help="true label = the nearest folder above each path named like a label: its "
            "parent, or Surprise for Surprise/batch2/x.jpg (the only mode)"
        ),
    ] = True,
    out: Annotated[
        Path | None,
        typer.Option(
            help="a .json file, or a folder for metrics.json (default: <CSV name>-metrics.json "
            "beside the CSV)"
        ),
    ] = None,
    confusion: Annotated[
        bool,
        typer.Option(help="also write the confusion matrix: <name>-confusion.png by <name>.json"),
    ] = True,
) -> None:
    """Score an `edgefer classify` CSV against the folder each image sits in."""
    import numpy as np

    from train.csveval import CsvFormatError, evaluate_rows, read_results
    from train.metrics import format_report

    if not labels_from_parent_dir:
        raise typer.BadParameter("only --labels-from-parent-dir is supported")
    try:
        labels, rows = read_results(csv_path)
        metrics = evaluate_rows(labels, rows)
    except (CsvFormatError, ValueError) as exc:
        raise _fail(exc) from exc
    metrics["csv"] = str(csv_path)
    # Named after the CSV: default.csv and robust.csv scored in one folder keep both results.
    out = out or csv_path.with_name(f"{csv_path.stem}-metrics.json")
    # A folder: metrics.json (and confusion.png) in it; a file that exists is written over.
    if out.is_dir() or (not out.suffix and not out.exists()):
        out = out / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n")
    if confusion:
        from train.plots import plot_confusion

        plot_confusion(
            np.asarray(metrics["confusion_matrix"]),
            labels,
            # Named after the metrics file: two evaluations in one folder keep both plots.
            out.with_name(
                "confusion.png" if out.name == "metrics.json" else f"{out.stem}-confusion.png"
            ),
            f"{csv_path.name}",
        )
    _log(format_report(metrics))
    incomplete = metrics["incomplete_rows"]
    _log(
        f"failed rows {metrics['failed_rows']}, rows outside label folders "
        f"{metrics['unlabelled_rows']}"
        + (f", rows cut short or damaged {incomplete}" if incomplete else "")
        + f"; wrote {out}"
    )


@app.command()
def baselines(
    data_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="output folder (default: runs/baselines-<data folder>)"),
    ] = None,
    size: str = "48",
    channels: int = 1,
    classes: str = "",
    seed: Annotated[int, typer.Option(help="seed of the models")] = 0,
    split_seed: SplitSeedOption = 0,
    max_iter: Annotated[int, typer.Option(help="solver iterations (LR) / epochs (MLP)")] = 200,
    results: Annotated[Path, typer.Option(help="results table to add rows to")] = Path(
        "docs/results.md"
    ),
) -> None:
    """Logistic regression and an MLP on raw pixels, on the same split as the CNNs."""
    from train.baselines import memory_available, memory_needed, run_baselines
    from train.data import has_split_folders, list_labels, load_dataset

    if channels not in (1, 3):
        raise _fail(f"--channels must be 1 or 3 (as for fit), not {channels}")
    _check_results(results)
    try:
        data = load_dataset(
            data_dir,
            _size(size),
            channels,
            _classes(classes) or None,
            seed,
            Path("runs/cache"),
            split_seed=split_seed,
        )
    except ValueError as exc:  # too few class folders, a --classes name with no folder
        raise _fail(exc) from None
    train = data.splits["train"]
    shape = train.x.shape[1:]
    data.log_summary(_log, data_dir, images_hint=" (--size, --channels)")
    needed, available = memory_needed(len(train), shape), memory_available()
    if available is not None and needed > available:
        raise _fail(
            f"the baselines need about {needed / 2**30:.1f} GiB for {len(train)} train images "
            f"of {'x'.join(map(str, shape))} pixels (a float32 matrix of them), and "
            f"{available / 2**30:.1f} GiB is available: use a "
            "smaller --size (the report's baselines are pixel models; 48 is the default)"
        )
    out = out or Path("runs") / f"baselines-{data_dir.name}"
    # The table holds one row per model and data folder: a label subset, another input or split
    # is another task, whose row must not replace the default baselines' (docs/results.md's).
    root = data_dir / "train" if has_split_folders(data_dir) else data_dir
    subset = set(data.labels) != set(list_labels(root))  # --classes naming all: the same task
    variant = [f"labels {','.join(data.labels)}"] if subset else []
    if (*_size(size), channels) != (48, 48, 1):
        variant.append("input " + "x".join(map(str, shape)))
    if split_seed and data.protocol.startswith("stratified"):
        variant.append(f"split seed {split_seed}")
    run_baselines(
        data, out, data_dir.name, results, seed, max_iter, log=_log, variant=", ".join(variant)
    )


@app.command()
def split(
    run: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="a fit --out folder")],
    out: Annotated[
        Path, typer.Option(file_okay=False, help="folder to write <split>/<label>/ links into")
    ],
) -> None:
    """Write the run's train/val/test split as folders of symlinks to its images.

    For a dataset given as one folder (split 70/15/15 by fit): the val and test images to pass to
    `edgefer convert --calibration/--validate`, `edgefer classify` and `evaluate-csv`.
    """
    from train.config import FitConfig
    from train.data import export_split, prepare_data

    if not (run / "config.json").exists():
        raise _fail(f"no fit run in {run} (no config.json)")
    cfg = FitConfig.load(run)
    try:
        data = prepare_data(cfg, run)
        counts = export_split(data, out)
    except (OSError, ValueError) as exc:  # --out taken or not a folder, the data gone
        raise _fail(exc) from exc
    data.log_notes(_log)  # images added to or gone from the folder since the run
    _log(f"{out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()) + " images (links)")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="a fit --out folder")],
    results: Annotated[Path, typer.Option(help="results table")] = Path("docs/results.md"),
    figures: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="also copy curves + confusion PNGs here (e.g. docs/figures)"
        ),
    ] = None,
    threads: int = 2,
) -> None:
    """Re-make a run's curves, val/test evaluation (plain and flip TTA) and results row."""
    from train.tfenv import set_threads

    set_threads(threads, 2)
    from train.report import report_run

    if not (run / "config.json").exists() or not (run / "state.json").exists():
        raise _fail(f"{run} is not a fit run with a finished epoch (config.json and state.json)")
    _check_results(results)
    try:
        report_run(run, log=_log, results=results, figures=figures)
    except (FileNotFoundError, ValueError) as exc:  # its data folder gone, or no longer usable
        raise _fail(exc) from None


@app.command()
def average(
    run: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="a fit --out folder")],
    out: Annotated[
        Path,
        typer.Option(file_okay=False, help="folder for the averaged model.keras + spec.json"),
    ],
    first: Annotated[int, typer.Option(help="first epoch to average")] = 0,
    last: Annotated[int, typer.Option(help="last epoch to average (0: the newest)")] = 0,
    refresh_batchnorm: Annotated[
        bool,
        typer.Option(help="re-measure batch-norm statistics on train (else: their average)"),
    ] = True,
    threads: int = 2,
) -> None:
    """Average the weights of a run's kept checkpoints (fit --keep-from), re-measure its
    batch-norm statistics on train, save it for convert and print its val accuracy."""
    from train.tfenv import set_threads

    set_threads(threads, 2)
    from train.average import average_run

    if out.resolve() == run.resolve():
        raise _fail("--out must not be the run itself: its model.keras would be replaced")
    try:
        average_run(run, out, first, last, log=_log, refresh=refresh_batchnorm)
    except (FileNotFoundError, ValueError) as exc:  # no such epochs, the data gone or unusable
        raise _fail(exc) from None


@app.command()
def fold(
    models: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help=".keras models, each with spec.json"),
    ],
    out: Annotated[
        Path, typer.Option(file_okay=False, help="folder for the folded model.keras + spec.json")
    ],
) -> None:
    """Fold an ensemble into one model (the mean of the members' probabilities) for convert;
    it costs the members' FLOPs and bytes together."""
    from edgefer.convert import ConvertError
    from train.fold import fold as fold_into

    if any(out.resolve() == m.resolve().parent for m in models):
        raise _fail("--out must not be a member's folder: its model.keras would be replaced")
    if len({m.resolve() for m in models}) < len(models):
        raise _fail("a member is given twice")
    try:
        summary = fold_into(models, out)
    except (ConvertError, ValueError) as exc:
        raise _fail(exc) from None
    _log(
        f"{len(models)} members: {summary['params']:,} params, "
        f"{summary['flops'] / 1e6:.1f} MFLOPs/image -> {out / 'model.keras'}"
    )


@app.command("to-torch")
def to_torch(
    model: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="a Keras edge model (.keras)")
    ],
    out: Annotated[
        Path, typer.Option(dir_okay=False, help="the student checkpoint to write (.pt)")
    ],
    arch_args: Annotated[
        str,
        typer.Option(help='JSON, a larger student to grow the model into: {"widths": [...]}'),
    ] = "",
) -> None:
    """Copy a Keras edge model into a train.torchkd student checkpoint, for torchkd run
    --student-init on a GPU; checked to give the same probabilities."""
    from train.fromtorch import to_torch as port_back

    grown = _json(arch_args, "--arch-args") if arch_args else None
    with _torch_errors():
        r = port_back(model, out, grown)
    _log(
        f"{r['params']:,} params, widths {r['widths']}, {r['fresh_layers']} new layers; largest "
        f"probability difference Keras vs PyTorch {r['max_difference']:.1e} -> {out}"
    )


@app.command("from-tflite")
def from_tflite(
    model: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="an int8 edge model (.tflite)")
    ],
    data_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="its training data (folders)")
    ],
    out: Annotated[Path, typer.Option(file_okay=False, help="folder for model.keras + spec.json")],
    split_seed: SplitSeedOption = 0,
) -> None:
    """Rebuild a trainable Keras model from an int8 edge model (the shipped one, say) for
    fit --init: its runs/ checkpoints need not be kept. Checked against the int8 model."""
    from train.fromtflite import from_tflite as rebuild

    try:
        r = rebuild(model, data_dir, out, log=_log, split_seed=split_seed)
    except ValueError as exc:
        raise _fail(exc) from None
    _log(
        f"{r['params']:,} params, {r['flops'] / 1e6:.1f} MFLOPs/image; top-1 agreement with "
        f"the int8 model {r['agreement']:.3f} on {r['images']:,} train images (with batch "
        f"statistics {r['batch_statistics_agreement']:.3f}); temperature "
        f"{r['temperature_undone']:g} undone -> {out / 'model.keras'}"
    )


@app.command("from-torch")
def from_torch(
    checkpoint: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="a student-*.pt of train.torchkd")
    ],
    out: Annotated[Path, typer.Option(file_okay=False, help="folder for model.keras + spec.json")],
    summary: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="the run's summary.json (provenance)"),
    ] = None,
) -> None:
    """Copy a student trained in PyTorch (python -m train.torchkd) into the Keras edge model,
    checked to give the same probabilities, and save it for calibrate and convert."""
    from train.fromtorch import port

    with _torch_errors():
        r = port(checkpoint, out, summary)
    _log(
        f"{r['params']:,} params, {r['flops'] / 1e6:.1f} MFLOPs/image; largest probability "
        f"difference PyTorch vs Keras {r['max_difference']:.1e} -> {out / 'model.keras'}"
    )


@app.command()
def calibrate(
    model: KerasModelArg,
    data_dir: LabelledDirArg,
    out: Annotated[
        Path, typer.Option(file_okay=False, help="folder for the scaled model.keras + spec.json")
    ],
    threads: int = 2,
) -> None:
    """Fit a softmax temperature on labelled images so confidences match accuracy, fold it into
    the last layer and save the model for convert (no prediction changes)."""
    from train.tfenv import set_threads

    set_threads(threads, 2)
    from train.calibrate import T_RANGE
    from train.calibrate import calibrate as calibrate_model

    if out.resolve() == model.resolve().parent:
        raise _fail("--out must not be the model's folder: its model.keras would be replaced")
    try:
        s = calibrate_model(model, data_dir, out)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from None
    before, after = s["before"], s["after"]
    _log(
        f"temperature {s['temperature']:.3f} on {s['images']:,} images: "
        f"mean confidence {before['mean_confidence']:.3f} -> {after['mean_confidence']:.3f} "
        f"(accuracy {after['accuracy']:.4f}), calibration error {before['ece']:.4f} -> "
        f"{after['ece']:.4f}, log-loss {before['nll']:.4f} -> {after['nll']:.4f}"
    )
    low, high = T_RANGE
    if not low * 1.01 < s["temperature"] < high / 1.01:
        # Folded in and reported as any other: a search stopped by its bounds is not a fit.
        why = (
            "the model's scores say little about these images' labels (untrained, or another "
            "dataset's?)"
            if s["temperature"] >= high / 1.01
            else "the model's scores are far softer than its accuracy (distilled at a high T?)"
        )
        _log(
            f"warning: temperature {s['temperature']:.3f} is the end of the range searched "
            f"({low:g}-{high:g}): {why}"
        )
    for half in s["cross_check"]["halves"]:
        _log(
            f"  fitted on one half (T {half['temperature']:.3f}), on the other: calibration "
            f"error {half['before']['ece']:.4f} -> {half['after']['ece']:.4f}"
        )
    _log(f"-> {out / 'model.keras'}")


@app.command()
def archs(
    size: Annotated[str, typer.Option(help="input size, 48 or HxW")] = "48",
    channels: int = 1,
    n_classes: int = 7,
    arch: Annotated[str, typer.Option(help="only this architecture")] = "",
    arch_args: Annotated[
        str, typer.Option(help='JSON kwargs, e.g. {"stem": [16], "blocks": [2, 2, 3]}')
    ] = "{}",
) -> None:
    """Parameters and FLOPs (2 x MACs, analytic) of each architecture at an input size."""
    from train.archs import ARCHS, build
    from train.flops import count_flops

    h, w = _size(size)
    if channels not in (1, 3):
        raise _fail(f"--channels must be 1 or 3 (as for fit), not {channels}")
    kwargs = _json(arch_args, "--arch-args")
    if kwargs and not arch:
        raise typer.BadParameter("--arch-args needs --arch")
    for name in [arch] if arch else ARCHS:
        try:
            model = build(name, (h, w, channels), n_classes, **kwargs)
        except (ValueError, TypeError) as exc:
            raise _fail(exc) from None
        _log(
            f"{name:<6} {h}x{w}x{channels} -> {n_classes}: {model.count_params():>10,} params "
            f"{count_flops(model) / 1e6:>9.1f} MFLOPs"
        )


def main() -> None:
    app()

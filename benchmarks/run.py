r"""edgefer benchmarks (issue #6): speed, memory and start-up, measured side by side in one run.

    python benchmarks/run.py [--quick] [--model M.tflite] [--keras model.keras] [--data DIR]

Prints one table per section with ratios and PASS/MISS against the targets, and writes
benchmarks/RESULTS.md (--quick: RESULTS-quick.md; or --results PATH). Inputs are generated
into a temporary folder.

The committed RESULTS.md was made with --keras runs/edge-kd6r/model.keras, the shipped int8
model's float version, which is not committed (runs/ is git-ignored). Rebuild it from the
checkout's root, with the train extra installed, and run:

    python -m train from-tflite models/edgefer-fer2013-int8.tflite \
        ../shared/data/fer2013 --out runs/edge-kd6r
    python benchmarks/run.py --keras runs/edge-kd6r/model.keras
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # sibling modules, however the script is started

try:  # a second of imports: a Ctrl-C in it is one line too, as in main()
    import inputs
    import numpy as np
    import sections
    from harness import load_average, machine_description, usable_cores
    from report import Section, kept_notes, markdown_report, print_section
    from rich.console import Console

    from edgefer.shipped import model_path
    from edgefer.spec import read_spec
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

#: The project's data folder beside the checkout (``../shared/data``), wherever it is.
DEFAULT_DATA = os.environ.get(
    "EDGEFER_BENCH_DATA", str(HERE.parent.parent / "shared" / "data" / "fer2013")
)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (the usage text runs to a dozen) and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_sections(text: str) -> set[int]:
    """``--sections 1,4``: the section numbers, each one that exists; ValueError otherwise."""
    wanted = set()
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            number = int(item)
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not a section number") from None
        if number not in sections.SECTIONS:
            raise ValueError(f"there is no section {number}")
        wanted.add(number)
    if not wanted:
        raise ValueError("no section given")
    return wanted


def check_writable(path: Path) -> None:
    """Raise ValueError unless :func:`write_atomically` can write ``path``, changing nothing:
    found out before the run, not after it."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise ValueError(f"{path} is a folder")
    if target.exists() and not target.is_file():  # a device or pipe: written in place
        if not os.access(target, os.W_OK):
            raise ValueError(f"cannot write {path}")
        return
    if not target.parent.is_dir():
        raise ValueError(f"no folder {target.parent}")
    try:  # what write_atomically does: a new file beside it, renamed over it
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model", type=Path, default=None, help="the shipped .tflite (default: edgefer's)"
    )
    p.add_argument(
        "--keras",
        type=Path,
        help="the float Keras model it came from (spec.json beside it): enables section 2 and "
        "converts the four variants for sections 1, 5 and 7; for the shipped model, "
        "runs/edge-kd6r/model.keras, rebuilt as shown above",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="an already converted variant (KIND: none, float16, dynamic, int8); repeatable; "
        "'none' is the float32 model compared in sections 1 and 5",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path(DEFAULT_DATA),
        help="dataset with <label>/ folders, or train/ and val/ holding them "
        "(default: $EDGEFER_BENCH_DATA or %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="a small version (a minute or two)")
    p.add_argument(
        "--repeats", type=int, help="timed repeats per comparison (default 3-5; quick 2)"
    )
    p.add_argument("--sections", default="1,2,3,4,5,6,7,8,9,10", help="which sections, e.g. 1,4")
    p.add_argument(
        "--results",
        type=Path,
        help="Markdown to write (default: benchmarks/RESULTS.md; with --quick RESULTS-quick.md "
        "beside it, not over the committed full run)",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument(
        "--workdir",
        type=Path,
        help="a new or empty folder to generate the inputs in, kept (default: a temp dir, removed)",
    )
    args = p.parse_args(argv)
    if args.results is None:
        args.results = HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    # Usage errors before anything is measured or written: a run takes ten minutes.
    try:
        args.wanted = parse_sections(args.sections)
    except ValueError as exc:
        known = f"{min(sections.SECTIONS)}-{max(sections.SECTIONS)}"
        p.error(f"--sections {args.sections}: {exc} (sections are numbered {known})")
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats {args.repeats}: give 1 or more")
    for option in ("results", "json"):
        path = getattr(args, option)
        if path is not None:
            try:
                check_writable(path)
            except ValueError as exc:
                p.error(f"--{option}: {exc}")
    # The inputs are generated into new folders there (pngs/, ...): a second run with the same
    # --workdir, which keeps them, ended in a FileExistsError traceback after the imports.
    workdir = args.workdir
    if workdir is not None and workdir.exists():
        if not workdir.is_dir():
            p.error(f"--workdir {workdir}: not a folder")
        if any(workdir.iterdir()):
            p.error(f"--workdir {workdir}: not empty (an earlier run's inputs?); give a new folder")
    return args


def edgefer_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m edgefer``."""
    script = Path(sys.executable).parent / "edgefer"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgefer"]


def build_context(args: argparse.Namespace, work: Path) -> sections.Context:
    shipped = model_path(args.model).resolve()
    if not shipped.is_file():
        raise SystemExit(f"no model at {shipped}: pass --model PATH")
    spec = read_spec(shipped.read_bytes())
    if spec is None:
        raise SystemExit(f"{shipped} carries no edgefer spec (convert it with `edgefer convert`)")
    data = args.data
    val_dir = data / "val" if (data / "val").is_dir() else data
    calibration_dir = data / "train" if (data / "train").is_dir() else data
    pool = inputs.dataset_images(val_dir) + inputs.dataset_images(calibration_dir)
    pool = list(dict.fromkeys(pool))
    sizes = sections.QUICK if args.quick else sections.Sizes()
    if args.repeats is not None:
        sizes = replace(sizes, repeats=args.repeats, heavy_repeats=args.repeats)
    # As many readable images as any section copies (it cycles through fewer).
    pool, errors = inputs.readable(pool, spec, max(sizes.folder, sizes.memory_distinct))
    if not pool:
        raise SystemExit(f"no readable images under {data}: pass --data DIR")
    items, more = inputs.readable_sample(val_dir, spec, sizes.per_label)
    for error in dict.fromkeys(errors + more):
        print(f"warning: left out {error}", file=sys.stderr)
    ctx = sections.Context(
        shipped=shipped,
        spec=spec,
        sizes=sizes,
        work=work,
        pool=pool,
        val_dir=val_dir,
        calibration_dir=calibration_dir,
        cores=usable_cores(),
        edgefer=edgefer_command(),
        keras=args.keras.resolve() if args.keras else None,
    )
    for item in args.variant:
        kind, _, path = item.partition("=")
        if kind not in sections.VARIANT_NAMES or not Path(path).is_file():
            raise SystemExit(
                f"--variant {item}: expected KIND=PATH with KIND in none, float16, "
                "dynamic, int8 and an existing file"
            )
        ctx.variants[kind] = Path(path).resolve()
    ctx.folder = inputs.copy_folder(pool, work / "pngs", sizes.folder)
    ctx.folder_images = inputs.decode_all(ctx.files(), spec)
    if items:
        pixels = inputs.decode_all([p for p, _ in items], spec)
        ctx.val = (pixels, np.array([i for _, i in items]))
    return ctx


def settings_of(ctx: sections.Context, args: argparse.Namespace) -> dict[str, str]:
    s = ctx.sizes
    return {
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "shipped model": f"{ctx.shipped} ({ctx.shipped.stat().st_size:,} bytes, {ctx.spec.name})",
        "Keras model": str(ctx.keras) if ctx.keras else "none (section 2 skipped)",
        "variants": ", ".join(
            f"{sections.VARIANT_NAMES[k]}: {p.name}" for k, p in ctx.variants.items()
        )
        or "none",
        "data": str(args.data),
        "mode": "quick" if args.quick else "full",
        "repeats": f"interleaved, each after 1 warm-up round: {s.heavy_repeats} timed (sections "
        f"1, 3, 5), {s.repeats} (2, 7), {s.startup_repeats} (start-up), {s.memory_repeats} "
        "(memory, no warm-up)",
    }


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it, renamed over it: an interrupted or
    failed write leaves the file that was there (the last good RESULTS.md) as it was."""
    target = Path(os.path.realpath(path))  # through a symlink, as a plain write would go
    if target.exists() and not target.is_file():  # /dev/stdout, a pipe: nothing to replace
        target.write_text(text, encoding="utf-8")
        return
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if target.exists():  # keep its permissions (mkstemp's file is private)
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # usage errors exit 2 here, before anything runs or is written
    try:
        return run_benchmarks(args)
    except KeyboardInterrupt:
        # RESULTS.md and the JSON are each replaced whole, after the last section: an
        # interrupt before then leaves them as they were.
        print("interrupted", file=sys.stderr)
        return 130


def run_benchmarks(args: argparse.Namespace) -> int:
    # Wide enough for the tables when the output goes to a log file rather than a terminal.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
    machine = machine_description()
    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgefer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ctx = build_context(args, work)
        if ctx.keras and not {"none", "float16", "dynamic", "int8"} <= set(ctx.variants):
            console.print(f"converting {ctx.keras.name} four ways (child process)...")
            sections.convert_variants(ctx)
        settings = settings_of(ctx, args)
        for key, value in {**machine, **settings}.items():
            console.print(f"[bold]{key}[/]: {value}", soft_wrap=True)
        console.print()
        done: dict[int, Section] = {}
        for number in sections.RUN_ORDER:
            if number not in args.wanted:
                continue
            t0 = time.perf_counter()
            done[number] = sections.SECTIONS[number](ctx)
            print_section(console, done[number])
            console.print(f"  [dim](section {number}: {time.perf_counter() - t0:.0f} s)[/]\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    machine["load average at end"] = load_average()
    machine["total run time"] = f"{time.perf_counter() - started:.0f} s"
    ordered = [done[n] for n in sorted(done)]
    existing = args.results.read_text(encoding="utf-8") if args.results.is_file() else None
    write_atomically(
        args.results, markdown_report(machine, settings, ordered, kept_notes(existing))
    )
    console.print(f"wrote {args.results}")
    if args.json:
        payload = {
            "machine": machine,
            "settings": settings,
            "sections": [s.to_dict() for s in ordered],
        }
        write_atomically(args.json, json.dumps(payload, indent=2))
    misses = [c for s in ordered for c in s.checks if not c.passed]
    console.print(f"{len(misses)} target(s) missed" if misses else "every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

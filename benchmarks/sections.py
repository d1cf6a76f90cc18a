"""The seven measurements of issue #6, the Raspberry Pi estimate, face detection (#7) and the
shipped models side by side, one function each."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import inputs
import numpy as np
import reference
import workloads as wl
from faces_section import face_detection
from flops import model_cost
from harness import Rates, interleave, interleave_processes, paired_ratio
from report import Check, Section

from edgefer._quiet import quiet_fd
from edgefer.preprocess import normalize
from edgefer.shipped import SHIPPED_MODELS, shipped_models_dir
from edgefer.spec import ModelSpec, read_spec

VARIANT_NAMES = {"none": "float32", "float16": "float16", "dynamic": "dynamic", "int8": "int8"}


@dataclass(frozen=True)
class Sizes:
    """How much work each section does; ``--quick`` shrinks all of it."""

    folder: int = 5000  # section 1: PNGs classified end to end
    jpegs: int = 500  # section 3: camera-size JPEGs
    grid: int = 1000  # section 5: images per thread/batch point
    memory: tuple[int, int] = (500, 50_000)  # section 6
    memory_distinct: int = 500
    per_label: int | None = None  # section 2/7: val images per label (None: all)
    calibration: int = 300
    repeats: int = 5  # sections 2 and 7
    heavy_repeats: int = 3  # sections 1, 3 and 5, the long ones
    startup_repeats: int = 7
    memory_repeats: int = 2


QUICK = Sizes(
    folder=400,
    jpegs=24,
    grid=160,
    memory=(200, 2000),
    memory_distinct=100,
    per_label=12,
    calibration=40,
    repeats=2,
    heavy_repeats=2,
    startup_repeats=2,
    memory_repeats=1,
)


@dataclass
class Context:
    """Everything the sections share: models, generated inputs, sizes."""

    shipped: Path
    spec: ModelSpec
    sizes: Sizes
    work: Path
    pool: list[Path]
    val_dir: Path | None
    calibration_dir: Path
    cores: int
    edgefer: list[str]
    keras: Path | None = None
    variants: dict[str, Path] = field(default_factory=dict)  # kind -> .tflite
    folder: Path | None = None
    folder_images: np.ndarray | None = None
    val: tuple[np.ndarray, np.ndarray] | None = None  # pixels, label indices
    keras_result: dict | None = None

    @property
    def shipped_name(self) -> str:
        """Which model ``--model`` measured: "shipped" for edgefer's default model, another
        shipped model's ``--model`` name ("robust"), else the file's name."""
        folder = shipped_models_dir()
        for name, file in SHIPPED_MODELS.items():
            if (folder / file).resolve() == self.shipped.resolve():
                return "shipped" if name == "default" else name
        return self.shipped.name

    @property
    def shipped_label(self) -> str:
        """How tables name the measured model: "int8 (shipped)", "int8 (robust)", ..."""
        return f"{self.model_kind(self.shipped)} ({self.shipped_name})"

    @property
    def models(self) -> dict[str, Path]:
        """The measured model and, when there is one, its float32 version: the issue's pair."""
        models = {self.shipped_label: self.shipped}
        if "none" in self.variants:
            models["float32"] = self.variants["none"]
        return models

    @staticmethod
    def model_kind(path: Path) -> str:
        spec = read_spec(path.read_bytes())
        kind = spec.metadata.get("quantization") if spec else None
        return VARIANT_NAMES.get(kind, kind or "model")

    def files(self, n: int | None = None) -> list[str]:
        paths = sorted(str(p) for p in self.folder.iterdir())
        return paths if n is None else paths[:n]


def _rate(r: Rates) -> str:
    return f"{r.median:,.0f}"


def _spread(r: Rates) -> str:
    return _spread_of(r.values)


def _spread_of(values) -> str:
    """Half the max-min range over the median, as ±%; "-" for a single repeat (no spread)."""
    values = list(values)
    if len(values) < 2:
        return "-"
    return f"±{100 * Rates(tuple(values)).spread / 2:.0f}%"


def _ratio(x: float) -> str:
    return f"{x:.2f}×"


def _labelled_or_pool(ctx: Context, sec: Section) -> tuple[np.ndarray, np.ndarray | None]:
    """The labelled val images and their label indices; where ``--data`` holds none of the
    model's labels, the generated PNGs' pixels without labels (speed, no accuracy), said in a
    note, rather than ending a run whose other sections took minutes, with nothing written."""
    if ctx.val is not None:
        return ctx.val
    sec.notes.append(f"{ctx.val_dir} has none of the model's labels: speed only, no accuracy.")
    return ctx.folder_images, None


def _accuracy(probs: np.ndarray, y: np.ndarray | None) -> str:
    return "-" if y is None else f"{np.mean(probs.argmax(1) == y):.4f}"


# 1 ---------------------------------------------------------------------------------------------


BARE = "bare invoke (pre-decoded, pre-quantised)"
E2E = "edgefer classify (end to end, CSV)"
DECODE_1 = "load_image on 1 thread"
BARE_1 = "bare invoke, 1 thread"
E2E_1 = "edgefer classify -t 1 --workers 1"


def pipeline_efficiency(ctx: Context) -> Section:
    sec = Section(
        1,
        f"Pipeline efficiency: edgefer classify vs bare invoke ({ctx.sizes.folder:,} PNGs, "
        "batch 16)",
        ["model", "what", "interpreter threads", "images/s", "× bare (same threads)", "spread"],
    )
    paths = ctx.files()
    images = ctx.folder_images
    for name, model in ctx.models.items():
        runs = {
            BARE: wl.bare_invoke(model, images, 16, ctx.cores),
            "Classifier.predict (pre-decoded uint8)": wl.predict(wl.classifier(model), images),
            "decode + batching only (no inference)": wl.pipeline_without_inference(paths, ctx.spec),
            DECODE_1: wl.serial_decode(paths, ctx.spec),
            E2E: wl.cli_classify(model, ctx.folder, ctx.work / "s1.csv"),
        }
        if ctx.cores > 1:  # the same pair with one core left free for decoding
            runs[BARE_1] = wl.bare_invoke(model, images, 16, 1)
            runs[E2E_1] = wl.cli_classify(model, ctx.folder, ctx.work / "s1.csv", 16, 1, 1)
        rates = interleave(runs, ctx.sizes.heavy_repeats)
        for what, r in rates.items():
            one = what in (BARE_1, E2E_1)
            base = rates[BARE_1] if one else rates[BARE]
            threads = (
                "1"
                if one
                else ("-" if what.startswith(("decode", "load_image")) else str(ctx.cores))
            )
            sec.rows.append(
                [name, what, threads, _rate(r), _ratio(paired_ratio(r, base)), _spread(r)]
            )
        ratio = paired_ratio(rates[E2E], rates[BARE])
        sec.checks.append(
            Check(
                f"{name}: classify / bare invoke, {ctx.cores} threads (default)",
                _ratio(ratio),
                "≥ 0.80×",
                ratio >= 0.8,
            )
        )
        if E2E_1 in rates:
            ratio = paired_ratio(rates[E2E_1], rates[BARE_1])
            sec.checks.append(
                Check(
                    f"{name}: classify / bare invoke, 1 thread + 1 decoder",
                    _ratio(ratio),
                    "≥ 0.80×",
                    ratio >= 0.8,
                )
            )
        # If invoke keeps every core busy, decoding can only use what invoke leaves idle.
        t_inv = 1 / rates[BARE].median
        t_dec = 1 / rates[DECODE_1].median
        ceiling = t_inv / (t_inv + t_dec / ctx.cores)
        sec.notes.append(
            f"{name}: invoke {1e6 * t_inv:.0f} µs/image on {ctx.cores} threads, decode "
            f"{1e6 * t_dec:.0f} CPU-µs/image. With every core busy during invoke, decoding "
            f"cannot hide behind it: even perfectly packed, classify ≤ ≈{ceiling:.2f}× bare."
        )
    return sec


# 2 ---------------------------------------------------------------------------------------------


def against_keras(ctx: Context) -> Section:
    sec = Section(
        2,
        "Against the workstation: Keras model.predict vs edgefer TFLite (val images)",
        ["what", "images/s", "× Keras", "spread"],
    )
    if ctx.keras is None:
        sec.skipped = "no --keras model given"
        return sec
    from edgefer.convert import import_tensorflow, load_keras

    with quiet_fd(2):  # TensorFlow's start-up chatter, whatever TF_CPP_MIN_LOG_LEVEL says
        import_tensorflow()
        model = load_keras(ctx.keras)
    pixels, y = _labelled_or_pool(ctx, sec)
    x = normalize(pixels, ctx.spec.mean, ctx.spec.std)
    keras_name = "Keras model.predict (batch 64, pre-decoded float32)"
    kind = ctx.model_kind(ctx.shipped)
    which = "" if ctx.shipped_name == "shipped" else f" ({ctx.shipped_name})"
    int8_name = f"edgefer {kind}{which} Classifier.predict (batch 16, pre-decoded)"
    runs = {
        keras_name: wl.keras_predict(model, x, 64),
        int8_name: wl.predict(wl.classifier(ctx.shipped, 16), pixels),
    }
    if "none" in ctx.variants:
        runs["edgefer float32 Classifier.predict (batch 16, pre-decoded)"] = wl.predict(
            wl.classifier(ctx.variants["none"], 16), pixels
        )
    runs[f"edgefer classify, {ctx.shipped_name} model (end to end from PNG files)"] = (
        wl.cli_classify(ctx.shipped, ctx.folder, ctx.work / "s2.csv")
    )
    rates = interleave(runs, ctx.sizes.repeats)
    keras = rates[keras_name]
    for what, r in rates.items():
        sec.rows.append([what, _rate(r), _ratio(paired_ratio(r, keras)), _spread(r)])
    ratio = paired_ratio(rates[int8_name], keras)
    sec.checks.append(
        Check(f"edgefer {kind}{which} / Keras (same cores)", _ratio(ratio), "≥ 3×", ratio >= 3)
    )
    probs = np.asarray(model.predict(x, batch_size=64, verbose=0))
    ctx.keras_result = {
        "rate": keras.median,
        "accuracy": None if y is None else float(np.mean(probs.argmax(1) == y)),
        "probs": probs,
        "size": ctx.keras.stat().st_size,
    }
    sec.notes.append(
        f"TensorFlow {_tf_version()} on all {ctx.cores} cores (its default thread pools); "
        f"{len(x):,} images. Keras gets its best case: pre-decoded tensors, batch 64."
    )
    return sec


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


# 3 ---------------------------------------------------------------------------------------------


def large_inputs(ctx: Context) -> Section:
    n = ctx.sizes.jpegs
    folder = inputs.camera_jpegs(ctx.pool, ctx.work / "camera", n)
    paths = sorted(str(p) for p in folder.iterdir())
    sec = Section(
        3,
        f"Large inputs: {n} camera-size JPEGs (1920×1080 colour, q90), one decoding thread",
        ["what", "images/s", "× naive", "spread"],
    )
    runs = {
        "naive: full decode, convert, resize": wl.serial_naive_decode(paths, ctx.spec),
        "load_image: Image.draft reduced decode": wl.serial_decode(paths, ctx.spec),
        "edgefer classify on the folder (end to end)": wl.cli_classify(
            ctx.shipped, folder, ctx.work / "s3.csv"
        ),
    }
    rates = interleave(runs, ctx.sizes.heavy_repeats)
    naive = rates["naive: full decode, convert, resize"]
    for what, r in rates.items():
        sec.rows.append([what, _rate(r), _ratio(paired_ratio(r, naive)), _spread(r)])
    ratio = paired_ratio(rates["load_image: Image.draft reduced decode"], naive)
    sec.checks.append(Check("draft decode / naive decode", _ratio(ratio), "≥ 3×", ratio >= 3))
    return sec


# 4 ---------------------------------------------------------------------------------------------

HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "jax", "torch")


def startup(ctx: Context) -> Section:
    one = ctx.work / "one.png"
    one.write_bytes(Path(ctx.files(1)[0]).read_bytes())
    out = ctx.work / "one.csv"
    py = sys.executable
    classify = [*ctx.edgefer, "classify", str(one), "-o", str(out), "-m", str(ctx.shipped), "-q"]
    commands = {
        'python -c "pass"': [py, "-c", "pass"],
        'python -c "import numpy, PIL" (floor)': [py, "-c", "import numpy, PIL"],
        "edgefer --help": [*ctx.edgefer, "--help"],
        "edgefer classify one.png": classify,
    }
    runs = interleave_processes(commands, ctx.sizes.startup_repeats)
    wall = {k: statistics.median(r.seconds for r in v) for k, v in runs.items()}
    floor = wall['python -c "import numpy, PIL" (floor)']
    sec = Section(
        4,
        f"Start-up: wall time of whole processes (median of {ctx.sizes.startup_repeats})",
        ["command", "seconds", "spread", "− floor", "peak RSS MiB"],
    )
    for name, seconds in wall.items():
        rss = statistics.median(r.peak_rss_kib for r in runs[name]) / 1024
        spread = _spread_of(r.seconds for r in runs[name])
        sec.rows.append([name, f"{seconds:.3f}", spread, f"{seconds - floor:+.3f}", f"{rss:.0f}"])
    extra = wall["edgefer classify one.png"] - floor
    sec.checks.append(
        Check("classify one image − floor", f"{extra:.3f} s", "≤ 0.5 s", extra <= 0.5)
    )
    imported, top = _imports_of(classify)
    heavy = sorted({m for m in imported if m.split(".")[0] in HEAVY_MODULES})
    sec.checks.append(
        Check(
            "heavy frameworks imported by classify",
            ", ".join(heavy[:3]) if heavy else "none",
            "none (no tensorflow)",
            not heavy,
        )
    )
    sec.notes.append(
        "Slowest top-level imports of `edgefer classify` (-X importtime, cumulative): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in top)
    )
    return sec


def _imports_of(command: list[str]) -> tuple[set[str], list[tuple[str, float]]]:
    """Modules a command imports, and its five slowest top-level imports (-X importtime)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-500:]}")
    names, top = set(), []
    for line in result.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        names.add(m.group(4))
        if len(m.group(3)) == 1:  # one space: imported at top level, not by another module
            top.append((m.group(4), int(m.group(2)) / 1000))
    return names, sorted(top, key=lambda t: -t[1])[:5]


# 5 ---------------------------------------------------------------------------------------------


def threads_and_batches(ctx: Context) -> Section:
    threads = sorted({1, 2, ctx.cores})
    batches = (1, 8, 32)
    n = ctx.sizes.grid
    folder = ctx.work / "grid"
    folder.mkdir()
    for p in ctx.files(n):
        os.link(p, folder / Path(p).name)
    images = ctx.folder_images[:n]
    sec = Section(
        5,
        f"Threads and batch size ({n:,} PNGs per point; all cores = {ctx.cores})",
        [
            "model",
            "threads",
            "batch",
            "classify images/s",
            "spread",
            "bare invoke images/s",
            "spread",
            "classify / bare",
        ],
    )
    for name, model in ctx.models.items():
        runs = {}
        for t in threads:
            for b in batches:
                runs[("classify", t, b)] = wl.cli_classify(model, folder, ctx.work / "s5.csv", b, t)
                runs[("bare", t, b)] = wl.bare_invoke(model, images, b, t)
        rates = interleave(runs, ctx.sizes.heavy_repeats)
        for t in threads:
            for b in batches:
                c, r = rates[("classify", t, b)], rates[("bare", t, b)]
                label = f"{t} (all)" if t == ctx.cores else str(t)
                sec.rows.append(
                    [
                        name,
                        label,
                        str(b),
                        _rate(c),
                        _spread(c),
                        _rate(r),
                        _spread(r),
                        _ratio(paired_ratio(c, r)),
                    ]
                )
    return sec


# 6 ---------------------------------------------------------------------------------------------


def memory(ctx: Context) -> Section:
    small_n, large_n = ctx.sizes.memory
    distinct = inputs.copy_folder(ctx.pool, ctx.work / "distinct", ctx.sizes.memory_distinct)
    small = inputs.link_folder(distinct, ctx.work / "m_small", small_n)
    large = inputs.link_folder(distinct, ctx.work / "m_large", large_n)

    def command(folder: Path) -> list[str]:
        out = ctx.work / f"{folder.name}.csv"
        return [*ctx.edgefer, "classify", str(folder), "-o", str(out), "-m", str(ctx.shipped), "-q"]

    runs = interleave_processes(
        {f"{small_n:,} files": command(small), f"{large_n:,} files": command(large)},
        ctx.sizes.memory_repeats,
        warmup=0,
    )
    with open(ctx.work / "m_large.csv", encoding="utf-8") as f:
        rows = sum(1 for _ in f) - 1
    if rows != large_n:
        raise RuntimeError(f"the {large_n}-file run wrote {rows} rows")
    sec = Section(
        6,
        f"Memory: peak RSS of `edgefer classify` processes (max of {ctx.sizes.memory_repeats})",
        ["input", "peak RSS MiB", "spread", "wall s", "spread", "images/s (incl. start-up)"],
    )
    peaks = {}
    for (name, results), n in zip(runs.items(), (small_n, large_n), strict=True):
        peaks[name] = max(r.peak_rss_kib for r in results)
        seconds = statistics.median(r.seconds for r in results)
        sec.rows.append(
            [
                name,
                f"{peaks[name] / 1024:.1f}",
                _spread_of(r.peak_rss_kib for r in results),
                f"{seconds:.1f}",
                _spread_of(r.seconds for r in results),
                f"{n / seconds:,.0f}",
            ]
        )
    ratio = peaks[f"{large_n:,} files"] / peaks[f"{small_n:,} files"]
    sec.checks.append(
        Check(f"peak RSS {large_n:,} / {small_n:,} files", _ratio(ratio), "≤ 1.20×", ratio <= 1.2)
    )
    sec.notes.append(
        f"{large_n:,} files are hard links to {ctx.sizes.memory_distinct} distinct dataset "
        "images (same bytes and decode cost as distinct files; written in about a second)."
    )
    return sec


# 7 ---------------------------------------------------------------------------------------------


def quantization_variants(ctx: Context) -> Section:
    sec = Section(
        7,
        "Quantization variants (Classifier.predict on pre-decoded val images, batch 16, "
        f"{ctx.cores} threads)",
        [
            "variant",
            "size KiB",
            "size × float32",
            "images/s",
            "speed × float32",
            "val accuracy",
            "agrees with float32",
        ],
    )
    variants = {VARIANT_NAMES[k]: p for k, p in ctx.variants.items()}
    if not variants:
        variants = {ctx.shipped_label: ctx.shipped}
        sec.notes.append(f"No --keras or --variant given: {ctx.shipped_label} alone.")
    pixels, y = _labelled_or_pool(ctx, sec)
    classifiers = {name: wl.classifier(path, 16) for name, path in variants.items()}
    probs = {name: c.predict(pixels) for name, c in classifiers.items()}
    rates = interleave(
        {n: wl.predict(c, pixels) for n, c in classifiers.items()}, ctx.sizes.repeats
    )
    base = "float32" if "float32" in variants else next(iter(variants))
    for name, path in variants.items():
        size = path.stat().st_size
        sec.rows.append(
            [
                name,
                f"{size / 1024:,.0f}",
                _ratio(size / variants[base].stat().st_size),
                _rate(rates[name]),
                _ratio(paired_ratio(rates[name], rates[base])),
                _accuracy(probs[name], y),
                f"{np.mean(probs[name].argmax(1) == probs[base].argmax(1)):.4f}",
            ]
        )
    if ctx.keras_result:
        k = ctx.keras_result
        sec.rows.append(
            [
                "Keras .keras (section 2)",
                f"{k['size'] / 1024:,.0f}",
                _ratio(k["size"] / variants[base].stat().st_size),
                f"{k['rate']:,.0f}",
                "",
                "-" if k["accuracy"] is None else f"{k['accuracy']:.4f}",
                f"{np.mean(k['probs'].argmax(1) == probs[base].argmax(1)):.4f}",
            ]
        )
    sizes = "sizes include the embedded spec."
    if y is None:
        sec.notes.append(f"Speed only; {sizes}")
    else:
        sec.notes.append(f"Accuracy on {len(y):,} labelled images from {ctx.val_dir}; {sizes}")
    return sec


def convert_variants(ctx: Context) -> None:
    """Convert ``ctx.keras`` four ways in a child process (TensorFlow stays out of this one)."""
    out = ctx.work / "variants"
    out.mkdir()
    here = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path.insert(0, {str(here)!r}); import variants; "
        f"variants.main({str(ctx.keras)!r}, {str(out)!r}, {str(ctx.calibration_dir)!r}, "
        f"{ctx.sizes.calibration})"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"converting {ctx.keras} failed:\n{result.stderr[-2000:]}")
    for kind in VARIANT_NAMES:
        ctx.variants.setdefault(kind, out / f"{kind}.tflite")


# 8 ---------------------------------------------------------------------------------------------


def raspberry_pi(ctx: Context) -> Section:
    sec = Section(
        8,
        "What to expect on a Raspberry Pi (from public figures, scaled by arithmetic)",
        ["model", "MACs / image", "FLOPs / image", "conv+fc weights"],
    )
    costs = {}
    for name, model in ctx.models.items():
        cost = model_cost(model.read_bytes())
        costs[name] = cost
        sec.rows.append(
            [name, f"{cost.macs / 1e6:,.1f} M", f"{cost.flops / 1e6:,.1f} M", f"{cost.weights:,}"]
        )
    ours = next(iter(costs.values()))
    sec.notes += reference.estimates(ours.macs, ours.by_op.get("DEPTHWISE_CONV_2D", 0))
    return sec


# 10 --------------------------------------------------------------------------------------------


def shipped_models(ctx: Context) -> Section:
    """Every model shipped in ``models/`` by its ``--model`` name, against the default."""
    cores = ctx.cores
    sec = Section(
        10,
        f"The shipped models side by side (batch 16; val images pre-decoded for predict, "
        f"{ctx.sizes.folder:,} PNGs for classify)",
        [
            "--model",
            "size KiB",
            "MFLOPs",
            f"predict images/s, {cores} threads",
            "spread",
            "× default",
            "predict images/s, 1 thread",
            "spread",
            "× default",
            f"classify images/s, {cores} threads",
            "spread",
            "× default",
            "val accuracy",
            "same top-1 as default",
        ],
    )
    folder = shipped_models_dir()
    models = {n: folder / f for n, f in SHIPPED_MODELS.items() if (folder / f).is_file()}
    if "default" not in models:
        sec.skipped = f"no shipped models in {folder}"
        return sec
    spec = read_spec(models["default"].read_bytes())
    items, _ = inputs.readable_sample(ctx.val_dir, spec, ctx.sizes.per_label)  # run.py warned
    if items:
        pixels = inputs.decode_all([p for p, _ in items], spec)
        y = np.array([i for _, i in items])
    else:  # --data holds other labels (the test suite's tiny set): speed only
        pixels, y = inputs.decode_all(ctx.files(ctx.sizes.grid), spec), None
        sec.notes.append(f"{ctx.val_dir} has none of the shipped models' labels: no accuracy.")
    many = {n: wl.classifier(path, 16, cores) for n, path in models.items()}
    one = {n: wl.classifier(path, 16, 1) for n, path in models.items()}
    runs = {f"{n} many": wl.predict(c, pixels) for n, c in many.items()}
    runs |= {f"{n} one": wl.predict(c, pixels) for n, c in one.items()}
    runs |= {
        f"{n} classify": wl.cli_classify(path, ctx.folder, ctx.work / "s10.csv", 16, cores)
        for n, path in models.items()
    }
    rates = interleave(runs, ctx.sizes.repeats)
    top1 = {n: c.predict(pixels).argmax(1) for n, c in many.items()}
    for name, path in models.items():
        row = [name, f"{path.stat().st_size / 1024:,.0f}"]
        row.append(f"{model_cost(path.read_bytes()).flops / 1e6:,.1f}")
        for what in ("many", "one", "classify"):
            r = rates[f"{name} {what}"]
            row += [_rate(r), _spread(r), _ratio(paired_ratio(r, rates[f"default {what}"]))]
        row.append("-" if y is None else f"{np.mean(top1[name] == y):.4f}")
        row.append(f"{np.mean(top1[name] == top1['default']):.4f}")
        sec.rows.append(row)
    for c in (*many.values(), *one.values()):
        c.close()
    sec.notes.append(
        f"{len(pixels):,} images from {ctx.val_dir}; models from {folder}; "
        "× default is the median of per-repeat ratios, interleaved."
    )
    return sec


SECTIONS = {
    1: pipeline_efficiency,
    2: against_keras,
    3: large_inputs,
    4: startup,
    5: threads_and_batches,
    6: memory,
    7: quantization_variants,
    8: raspberry_pi,
    9: face_detection,
    10: shipped_models,
}

#: Run order: TensorFlow (section 2) is imported in this process last, after every
#: measurement that it could disturb except 7, which takes Keras' row from 2.
RUN_ORDER = (4, 1, 3, 5, 6, 9, 10, 2, 7, 8)

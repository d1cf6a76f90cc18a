"""Why `edgefer classify` falls short of bare invoke (section 1): the experiments behind RESULTS.md.

    python benchmarks/profile_pipeline.py [--model M.tflite] [--n 4000] [--repeats 5]

A. Where the main thread's time goes inside ``classify_paths`` (np.stack, Classifier.predict,
   waiting on decode futures), against the same calls with no decoder threads running.
B. Other ways to run the same work, interleaved with bare invoke: fewer decoder threads, no
   threads at all, one interpreter thread, a shorter GIL switch interval, the leaner decoder
   of C.
C. The per-image cost of ``load_image`` on a 48x48 PNG, against ``lean_load``, the prototype of
   P1 and P2 in RESULTS.md (no stat calls before opening, no EXIF lookup for PNGs without EXIF).
   Both changes have been in ``load_image`` since, so the two now measure alike.

Nothing here changes edgefer: the variants are built from its public functions.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import inputs
import numpy as np
import workloads as wl
from harness import interleave, paired_ratio
from PIL import Image, ImageOps

import edgefer.pipeline as pipeline
from edgefer.classifier import Classifier, ClassifierOptions, ModelError
from edgefer.preprocess import _convert_mode, load_image
from edgefer.shipped import model_path


def serial(classifier: Classifier, paths: list[str]) -> Iterator[pipeline.Result]:
    """Decode a batch, classify it, repeat: one thread, no overlap at all."""
    spec, batch = classifier.spec, classifier.batch_size
    for i in range(0, len(paths), batch):
        chunk = paths[i : i + batch]
        items = [load_image(p, spec.input_size, spec.channels) for p in chunk]
        yield from pipeline._results(chunk, items, classifier.predict(np.stack(items)), spec.labels)


def consume(results: Iterator, n: int) -> int:
    for _ in results:
        pass
    return n


def part_a(model: Path, paths: list[str]) -> None:
    print("A. main thread of classify_paths (2 decoder threads), µs per image")
    clf = Classifier(ClassifierOptions(model=model, batch_size=16))
    spent: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    real_predict, real_stack, real_result = clf.predict, np.stack, Future.result
    clf.predict = timed("Classifier.predict", real_predict)
    np.stack = timed("np.stack of a batch", real_stack)
    Future.result = timed("waiting for a decoded image", real_result)
    try:
        for label, run in (
            ("classify_paths", lambda: consume(pipeline.classify_paths(clf, paths), 0)),
            ("serial, no threads", lambda: consume(serial(clf, paths), 0)),
        ):
            spent.clear()
            start = time.perf_counter()
            run()
            total = time.perf_counter() - start
            parts = ", ".join(f"{k} {1e6 * v / len(paths):.0f}" for k, v in spent.items())
            print(f"  {label:22s} total {1e6 * total / len(paths):4.0f}: {parts}")
    finally:
        clf.predict, np.stack, Future.result = real_predict, real_stack, real_result
    print()


def part_b(model: Path, paths: list[str], images: np.ndarray, repeats: int, cores: int) -> None:
    print(f"B. strategies, images/s (median of {repeats}, interleaved), batch 16, no CSV")
    clfs = {
        t: Classifier(ClassifierOptions(model=model, batch_size=16, num_threads=t))
        for t in {1, cores}
    }

    def switch(interval: float, fn):
        def run():
            old = sys.getswitchinterval()
            sys.setswitchinterval(interval)
            try:
                return fn()
            finally:
                sys.setswitchinterval(old)

        return run

    n = len(paths)
    c = clfs[cores]
    size, ch = c.spec.input_size, c.spec.channels
    runs = {
        f"bare invoke, {cores} threads": wl.bare_invoke(model, images, 16, cores),
        f"classify_paths, {cores} threads, default decoders": lambda: consume(
            pipeline.classify_paths(c, paths), n
        ),
        f"classify_paths, {cores} threads, 1 decoder": lambda: consume(
            pipeline.classify_paths(c, paths, workers=1), n
        ),
        f"classify_paths, {cores} threads, switch interval 0.5 ms": switch(
            0.0005, lambda: consume(pipeline.classify_paths(c, paths), n)
        ),
        f"serial (no threads), {cores} interpreter threads": lambda: consume(serial(c, paths), n),
        f"classify_paths, {cores} threads, lean_load (P1+P2 prototype)": lambda: consume(
            pipeline.classify_paths(c, paths, loader=lambda p: lean_load(p, size, ch)), n
        ),
        "bare invoke, 1 thread": wl.bare_invoke(model, images, 16, 1),
        "classify_paths, 1 thread, 1 decoder": lambda: consume(
            pipeline.classify_paths(clfs[1], paths, workers=1), n
        ),
    }
    rates = interleave(runs, repeats)
    bare_all, bare_1 = rates[f"bare invoke, {cores} threads"], rates["bare invoke, 1 thread"]
    for name, r in rates.items():
        base = bare_1 if "1 thread" in name else bare_all
        print(f"  {name:58s} {r.median:7,.0f}  {paired_ratio(r, base):.2f}× bare (same threads)")
    print()


def lean_load(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
    """load_image's happy path as P1 and P2 first proposed it (both since made in load_image)."""
    with Image.open(path) as im:  # errors would be mapped after the fact (EAFP), not pre-checked
        im.load()
        if im.format != "PNG" or "exif" in im.info or "Raw profile type exif" in im.info:
            with contextlib.suppress(Exception):
                im = ImageOps.exif_transpose(im)
        im = _convert_mode(im, channels)
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
        return np.asarray(im, dtype=np.uint8).reshape(*size, channels)


def part_c(paths: list[str], spec, repeats: int) -> None:
    print("C. decoding one 48x48 PNG on one thread, µs per image")
    size, ch = spec.input_size, spec.channels

    def pathlib_checks() -> int:
        for p in paths:
            q = Path(p)
            q.is_dir()
            q.exists()
            q.stat()
        return len(paths)

    def open_load() -> int:
        for p in paths:
            with Image.open(p) as im:
                im.load()
        return len(paths)

    def open_load_exif() -> int:
        for p in paths:
            with Image.open(p) as im:
                im.load()
                ImageOps.exif_transpose(im)
        return len(paths)

    def lean() -> int:
        for p in paths:
            lean_load(p, size, ch)
        return len(paths)

    runs = {
        "load_image (as shipped)": wl.serial_decode(paths, spec),
        "lean_load: P1+P2 prototype (both now in load_image)": lean,
        "is_dir + exists + stat (load_image's checks before P1)": pathlib_checks,
        "Image.open + load": open_load,
        "Image.open + load + exif_transpose": open_load_exif,
    }
    rates = interleave(runs, repeats)
    for name, r in rates.items():
        print(f"  {name:66s} {1e6 / r.median:6.1f}")
    same = all(np.array_equal(load_image(p, size, ch), lean_load(p, size, ch)) for p in paths[:200])
    print(f"  lean_load returns identical pixels on the first 200 files: {same}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model", type=Path, default=None, help="a .tflite or a shipped model's name (default)"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/data/fer2013",
        help="a folder of images, searched recursively (default: %(default)s)",
    )
    p.add_argument("--n", type=int, default=4000, help="PNGs copied from it to classify")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each strategy")
    args = p.parse_args(argv)
    # Usage errors in one line before any work: a folder without images (the default one,
    # in a checkout not beside shared/) ended in numpy's "need at least one array to stack".
    for name in ("n", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: give 1 or more")
    pool = inputs.dataset_images(args.data)
    if not pool:
        p.error(f"--data {args.data}: no images there")
    model = model_path(args.model).resolve()
    try:
        clf = Classifier(ClassifierOptions(model=model))
    except ModelError as exc:
        p.error(f"--model: {exc}")
    with tempfile.TemporaryDirectory(prefix="edgefer-profile-") as tmp:
        folder = inputs.copy_folder(pool, Path(tmp) / "pngs", args.n)
        paths = sorted(str(x) for x in folder.iterdir())
        images = inputs.decode_all(paths, clf.spec)
        cores = clf.num_threads
        print(f"model {model.name}, {args.n} PNGs, {cores} cores\n")
        part_a(model, paths)
        part_b(model, paths, images, args.repeats, cores)
        part_c(paths, clf.spec, args.repeats)


if __name__ == "__main__":
    main()

"""Keras -> self-describing TFLite, float32 / float16 / dynamic-range / full int8.

The only module of the package that uses TensorFlow, and only inside its functions: the device
commands never pay for importing it.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgefer._quiet import quiet_fd
from edgefer.discovery import images_under
from edgefer.preprocess import ImageError, load_image, normalize
from edgefer.spec import ModelSpec, SpecError, embed_spec, is_tflite

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


class ConvertError(Exception):
    """A conversion that cannot proceed; the message is one line for the user."""


def import_tensorflow():
    """TensorFlow, or a ConvertError that says how to get it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with quiet_fd(2):  # TF's import-time banners (oneDNN, absl) are noise for a CLI user
            import tensorflow as tf
    except ImportError as exc:
        raise ConvertError('converting needs TensorFlow: pip install "edgefer[train]"') from exc
    return tf


def labelled_images(directory: Path, labels: tuple[str, ...]) -> list[tuple[Path, int]]:
    """``(path, label index)`` for the image files under ``directory/<label>/`` (in
    sub-folders too, as for training), sorted."""
    items = []
    for index, label in enumerate(labels):
        folder = directory / label
        if folder.is_dir():
            items += [(p, index) for p in images_under(folder)]
    return items


def check_labelled_folder(
    directory: Path, labels: tuple[str, ...], purpose: str = "validation", flat_ok: bool = False
) -> None:
    """Raises ConvertError unless ``directory`` is a folder, or when it has a folder named as a
    label but for case (``Angry`` for ``angry``), whose images would be left out, or (unless
    ``flat_ok``: calibration may use any images) no folder named as a label at all. Other
    folders are classes the model was not trained on (``--classes``): ignored.
    """
    if directory.exists() and not directory.is_dir():
        raise ConvertError(
            f"{purpose} data {directory} is a file, not a folder (of <label>/ folders of images)"
        )
    if not directory.is_dir():
        raise ConvertError(f"{purpose} folder not found: {directory}")
    folded = {label.casefold(): label for label in labels}
    misnamed = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_dir() and p.name not in labels and p.name.casefold() in folded
    )
    if misnamed:
        raise ConvertError(
            f"{directory} has folders named as the model's labels but for case: "
            + ", ".join(f"{name} (label {folded[name.casefold()]})" for name in misnamed)
        )
    if not flat_ok and not any((directory / label).is_dir() for label in labels):
        raise ConvertError(
            f"no label folders in {purpose} folder {directory} (expected <label>/<image> "
            f"folders for {', '.join(labels)})"
        )


def calibration_sample(
    directory: Path, labels: tuple[str, ...], size: int, seed: int = 0
) -> list[Path]:
    """Up to ``size`` images, stratified over the label folders (or all images in a flat folder)."""
    items = labelled_images(directory, labels)
    if not items:
        flat = images_under(directory)
        rng = random.Random(seed)
        rng.shuffle(flat)
        return flat[:size]
    by_label: dict[int, list[Path]] = {}
    for path, index in items:
        by_label.setdefault(index, []).append(path)
    rng = random.Random(seed)
    for paths in by_label.values():
        rng.shuffle(paths)
    # Round-robin over labels so each gets an equal share while it has images left.
    sample: list[Path] = []
    queues = [list(v) for v in by_label.values()]
    while len(sample) < size and any(queues):
        for q in queues:
            if q and len(sample) < size:
                sample.append(q.pop())
    return sample


#: Files that could not be read, with why: ``(path, reason)``.
Skipped = list[tuple[Path, str]]


def load_labelled(
    items: list[tuple[Path, int]], spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray, Skipped]:
    """uint8 images ``(n, H, W, C)`` and their label indices, and the unreadable files, which are
    left out."""
    images, labels, skipped = [], [], []
    for path, index in items:
        try:
            images.append(load_image(path, spec.input_size, spec.channels))
        except ImageError as exc:
            skipped.append((path, str(exc)))
            continue
        labels.append(index)
    if not images:
        empty = np.zeros((0, *spec.input_size, spec.channels), dtype=np.uint8)
        return empty, np.zeros(0, int), skipped
    return np.stack(images), np.asarray(labels), skipped


def load_batch(paths: list[Path], spec: ModelSpec) -> tuple[np.ndarray, Skipped]:
    """uint8 images ``(n, H, W, C)``, and the unreadable files, which are left out."""
    images, _, skipped = load_labelled([(p, 0) for p in paths], spec)
    return images, skipped


def check_model_file(model_path: Path) -> None:
    """Raises ConvertError for a model path that is not a file (missing, a SavedModel folder)."""
    if model_path.is_dir():
        raise ConvertError(
            f"{model_path} is a folder (a SavedModel?): edgefer converts .keras and .h5 files, "
            "which Keras 3 loads; save the model with model.save('model.keras')"
        )
    if not model_path.is_file():
        raise ConvertError(f"no such Keras model: {model_path}")
    try:
        with open(model_path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConvertError(f"cannot read {model_path}: {exc.strerror or exc}") from exc
    if is_tflite(head):
        # Keras's own words for it were cut mid-sentence, and for a model without a spec.json
        # beside it (a shipped one) convert asked for the spec instead.
        raise ConvertError(
            f"{model_path} is a TFLite model, already converted: convert takes the Keras model "
            "(.keras or .h5) it was made from (for an edgefer int8 model, `python -m train "
            "from-tflite` rebuilds one)"
        )


def load_keras(model_path: Path):
    """Raises ConvertError for a missing or unreadable .keras file."""
    check_model_file(model_path)
    tf = import_tensorflow()
    try:
        return tf.keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "File not found" in first:  # Keras's words for a file it cannot open as a model
            first = "not a Keras model (.keras or .h5), or a damaged one"
        raise ConvertError(f"cannot load {model_path}: {first[:200]}") from exc


def resolve_spec(model_path: Path, spec_path: Path | None) -> ModelSpec:
    """The spec from ``spec_path`` or ``spec.json`` beside the model."""
    path = spec_path or model_path.with_name("spec.json")
    if not path.is_file():
        raise ConvertError(
            f"no model spec: expected {path} (written by `python -m train fit`) or --spec FILE"
        )
    try:
        return ModelSpec.from_json(path.read_text(encoding="utf-8"))
    except SpecError as exc:
        raise ConvertError(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConvertError(f"{path}: not a spec (JSON text)") from exc
    except OSError as exc:
        raise ConvertError(f"cannot read {path}: {exc.strerror or exc}") from exc


def check_model_matches_spec(model, spec: ModelSpec) -> None:
    try:
        model.inputs  # noqa: B018 - a Sequential saved before it was ever built raises here
    except AttributeError:
        raise ConvertError(
            "the model has no input shape (a Sequential saved before it was built): start it "
            f"with keras.Input({(*spec.input_size, spec.channels)}), or train it before saving"
        ) from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConvertError(
            f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; edgefer "
            "runs models of one image input and one output (the class scores)"
        )
    in_shape = tuple(model.inputs[0].shape[1:])
    out_shape = tuple(model.outputs[0].shape[1:])
    if len(out_shape) != 1:
        # A per-pixel softmax of as many channels as labels passed the count below, and was
        # written: the device could not use it.
        hint = ""
        if out_shape and all(d == 1 for d in out_shape[:-1]):
            hint = " (scores as 1x1 pixels: end the model with keras.layers.Flatten())"
        raise ConvertError(
            f"model output {out_shape} is not one score per label ({len(spec.labels)},): "
            f"edgefer converts image classifiers{hint}"
        )
    out_units = out_shape[0]
    expected = (*spec.input_size, spec.channels)
    if in_shape != expected:
        hint = ""
        if None in in_shape:  # TFLite wants fixed sizes: the device feeds one size anyway
            hint = f"; give the model a fixed input, keras.Input({expected})"
        raise ConvertError(f"model input {in_shape} does not match the spec's {expected}{hint}")
    if out_units != len(spec.labels):
        raise ConvertError(
            f"model has {out_units} outputs but the spec lists {len(spec.labels)} labels"
        )


def only_output(answer: object) -> object:
    """The one output of a model's answer: Keras answers a model built with named outputs
    (``keras.Model(x, {"probs": y})``) with a dict, and one built with ``[y]`` with a list."""
    if isinstance(answer, dict):
        (answer,) = answer.values()
    elif isinstance(answer, list | tuple):
        (answer,) = answer
    return answer


def check_output_kind(model, spec: ModelSpec) -> None:
    """Refuse a spec whose ``output`` does not say what the model gives: logits read as
    probabilities are clipped into nonsense, and a softmax read as logits is flattened. Told
    from the model's answers to a few random images (a softmax sums to 1 whatever the input).
    """
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, *spec.input_size, spec.channels), dtype=np.uint8)
    raw = model(normalize(pixels, spec.mean, spec.std), training=False)
    raw = np.asarray(only_output(raw), np.float64)
    # 1e-2: a softmax computed in bfloat16 sums to 1 within ~4e-3.
    softmax_like = raw.min() >= -1e-6 and np.abs(raw.sum(axis=-1) - 1).max() < 1e-2
    if spec.output == "probabilities" and not softmax_like:
        raise ConvertError(
            "the model's outputs are not probabilities (negative, or rows not summing to 1) "
            'but the spec says so: for a model without a final softmax set "output": '
            '"logits" in the spec'
        )
    if spec.output == "logits" and softmax_like:
        raise ConvertError(
            'the model ends in a softmax but the spec says "output": "logits"; set "probabilities"'
        )


def to_tflite(
    model,
    spec: ModelSpec,
    quantize: str,
    calibration: np.ndarray | None = None,
) -> bytes:
    """Convert a loaded Keras model to TFLite flatbuffer bytes (without the spec).

    ``calibration``: uint8 images for int8, normalised here exactly as the device does.
    """
    if quantize not in QUANTIZATIONS:
        raise ConvertError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}")
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-channel dense weights make FULLY_CONNECTED v12, which tflite-runtime 2.14
        # (32-bit Pi OS) rejects; per-tensor dense weights load everywhere.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConvertError("int8 needs calibration images (--calibration DIR)")
        samples = normalize(calibration, spec.mean, spec.std)

        def representative() -> Iterator[list[np.ndarray]]:
            for x in samples:
                yield [x[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        # The converter prints from C++ straight to stdout and logs to stderr; errors still raise.
        with quiet_fd(1), quiet_fd(2):
            return converter.convert()
    except Exception as exc:  # noqa: BLE001 - converter errors are many and long
        raise ConvertError(f"conversion failed: {str(exc).splitlines()[0][:300]}") from exc


def check_output(path: Path, force: bool) -> None:
    """Refuse an output that cannot be written: checked first, not after minutes of work."""
    if str(path) == "-":
        raise ConvertError("-o -: a model is written to a file (stdout carries the report)")
    if path.exists() and not path.is_file() and not path.is_dir():
        # /dev/stdout, a FIFO, a device: replacing it by rename would put a file in its place.
        raise ConvertError(f"{path} is not a regular file; write the model to a file")
    if path.is_dir():
        raise ConvertError(f"output is a directory, not a file: {path}")
    if path.exists() and not force:
        raise ConvertError(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise ConvertError(f"output directory does not exist: {path.parent}")
    if path.parent.resolve() in (Path("/dev"), Path("/proc")) or path.is_symlink():
        # /dev/stdout with stdout sent to a file resolves to a regular file, yet the rename
        # would replace the link itself (and with it /dev/stdout for everyone, as root).
        raise ConvertError(f"{path} is a link or a device path; write the model to a file")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConvertError(f"cannot write to {path.parent}: permission denied")


def check_not_an_input(output: Path, model_path: Path, spec_path: Path | None) -> None:
    """Refuse an output that is the model being converted or its spec: with --force the
    .tflite replaced the only copy of the trained Keras model (and, without it, the message
    said to pass --force)."""
    inputs = (
        (model_path, "the Keras model being converted"),
        (spec_path or model_path.with_name("spec.json"), "the model's spec"),
    )
    for path, what in inputs:
        with contextlib.suppress(OSError):  # either missing: not the same file
            if os.path.samefile(output, path):
                raise ConvertError(f"-o {output} is {what}; write the .tflite to another file")


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` via a temp file + rename; refuse to replace without force."""
    check_output(path, force)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, read-only filesystem...
            raise ConvertError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


@dataclass(frozen=True)
class Parity:
    """Keras vs TFLite on one labelled folder."""

    n_images: int
    keras_accuracy: float
    tflite_accuracy: float
    agreement: float
    max_abs_diff: float
    keras_bytes: int
    tflite_bytes: int
    keras_ms_per_image: float
    tflite_ms_per_image: float
    #: Images of the folder that could not be read, left out of the comparison.
    skipped: Skipped = field(default_factory=list)

    @property
    def drop_points(self) -> float:
        """Accuracy lost by conversion, in percentage points."""
        return 100.0 * (self.keras_accuracy - self.tflite_accuracy)


def parity_from_predictions(
    y_true: np.ndarray, keras_probs: np.ndarray, tflite_probs: np.ndarray
) -> tuple[float, float, float, float]:
    """(keras accuracy, tflite accuracy, top-1 agreement, max |delta p|) from probabilities."""
    k_top = keras_probs.argmax(axis=1)
    t_top = tflite_probs.argmax(axis=1)
    return (
        float(np.mean(k_top == y_true)),
        float(np.mean(t_top == y_true)),
        float(np.mean(k_top == t_top)),
        float(np.max(np.abs(keras_probs - tflite_probs))),
    )


#: Images per Keras call when validating.
PARITY_BATCH = 64


def parity_report(
    model, model_path: Path, tflite_bytes: bytes, directory: Path, spec: ModelSpec, threads: int
) -> Parity:
    """Compare Keras and the converted model on ``directory/<label>/`` images."""
    from edgefer.classifier import Classifier, ClassifierOptions, to_probabilities

    items = labelled_images(directory, spec.labels)
    if not items:
        raise ConvertError(f"no labelled images in {directory} (expected <label>/<image> folders)")
    pixels, y_true, skipped = load_labelled(items, spec)
    if not len(y_true):
        raise ConvertError(f"no readable images in {directory} to validate with")
    # A batch at a time: float32 copies of every image (and TensorFlow's of those) took 2.4 MB
    # per image at 222x222x3, 5 GB to validate on 1,600.
    keras_s, outputs = 0.0, []
    for i in range(0, len(pixels), PARITY_BATCH):
        x = normalize(pixels[i : i + PARITY_BATCH], spec.mean, spec.std)
        start = time.perf_counter()
        outputs.append(np.asarray(only_output(model.predict_on_batch(x)), dtype=np.float32))
        keras_s += time.perf_counter() - start
    keras_raw = np.concatenate(outputs)
    keras_probs = to_probabilities(keras_raw, spec.output)  # as the device reads the TFLite
    with Classifier(ClassifierOptions(model=tflite_bytes, num_threads=threads, batch_size=16)) as c:
        start = time.perf_counter()
        tflite_probs = c.predict(pixels)
        tflite_s = time.perf_counter() - start
    k_acc, t_acc, agree, max_diff = parity_from_predictions(y_true, keras_probs, tflite_probs)
    n = len(y_true)
    return Parity(
        n,
        k_acc,
        t_acc,
        agree,
        max_diff,
        model_path.stat().st_size,
        len(tflite_bytes),
        1000 * keras_s / n,
        1000 * tflite_s / n,
        skipped,
    )


@dataclass(frozen=True)
class Conversion:
    """What ``convert`` produced."""

    output: Path
    spec: ModelSpec
    size: int
    parity: Parity | None
    #: Calibration images that could not be read, left out of the quantization ranges.
    calibration_skipped: Skipped = field(default_factory=list)
    #: Labels without a calibration folder of images, where others had one.
    calibration_missing: tuple[str, ...] = ()


def convert(
    model_path: Path,
    output: Path,
    quantize: str = "int8",
    calibration_dir: Path | None = None,
    calibration_size: int = 300,
    validate_dir: Path | None = None,
    spec_path: Path | None = None,
    force: bool = False,
    threads: int = 2,
) -> Conversion:
    """Convert ``model_path`` and write a self-describing ``.tflite`` to ``output``.

    Raises:
        ConvertError: missing/corrupt model or spec, label/output mismatch, empty calibration
            folder, existing output without ``force``, or a converter failure.
    """
    if quantize not in QUANTIZATIONS:
        raise ConvertError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}")
    check_not_an_input(output, model_path, spec_path)
    check_output(output, force)
    check_model_file(model_path)
    spec = resolve_spec(model_path, spec_path)
    if validate_dir is not None:  # before the conversion, not after it
        check_labelled_folder(validate_dir, spec.labels)
    calibration, skipped = None, []
    calibration_missing: tuple[str, ...] = ()
    if quantize == "int8":
        if calibration_dir is None:
            raise ConvertError("--quantize int8 needs --calibration DIR (a few hundred images)")
        check_labelled_folder(calibration_dir, spec.labels, "calibration", flat_ok=True)
        missing = tuple(x for x in spec.labels if not (calibration_dir / x).is_dir())
        if len(missing) < len(spec.labels):
            calibration_missing = missing
        calibration, skipped = load_batch(
            calibration_sample(calibration_dir, spec.labels, calibration_size), spec
        )
        if len(calibration) == 0:
            why = f" ({skipped[0][0].name}: {skipped[0][1]})" if skipped else ""
            raise ConvertError(f"no readable images in calibration folder {calibration_dir}{why}")
    model = load_keras(model_path)
    check_model_matches_spec(model, spec)
    check_output_kind(model, spec)
    tf = import_tensorflow()
    blob = to_tflite(model, spec, quantize, calibration)
    metadata = dict(spec.metadata)
    metadata.update(
        {
            "quantization": quantize,
            "converter": f"tensorflow {tf.__version__}",
            "source_model": model_path.name,
        }
    )
    if calibration is not None:  # int8 quantization ranges; not the temperature's data
        metadata["calibration_images"] = int(len(calibration))
        metadata["calibration_data"] = str(calibration_dir)
    spec = replace(spec, metadata=metadata)
    data = embed_spec(blob, spec)
    parity = None
    if validate_dir is not None:
        parity = parity_report(model, model_path, data, validate_dir, spec, threads)
    write_atomic(output, data, force)
    return Conversion(output, spec, len(data), parity, skipped, calibration_missing)

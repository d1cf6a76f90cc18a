"""A TFLite expression classifier: spec in, probabilities out, one fixed batch size.

Float32, float16, dynamic-range and full-int8 (int8/uint8 in and out) models all take the same
path: normalise with the spec, quantise if the input tensor is integer, invoke, dequantise, and
turn logits into probabilities when the spec says the model returns logits.
"""

from __future__ import annotations

import operator
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from edgefer._quiet import quiet_fd
from edgefer.preprocess import normalize
from edgefer.runtime import (
    Runtime,
    default_threads,
    known_runtime,
    load_runtime,
    runtime_names,
)
from edgefer.shipped import SHIPPED_MODELS, model_path
from edgefer.spec import (
    NORMALIZATIONS,
    ModelSpec,
    SpecError,
    flatbuffer,
    is_tflite,
    read_spec,
)

#: The largest ``batch_size``: the interpreter's tensors are sized for a whole batch at load
#: (at 4000, 627 MB to classify three images), and a bare invoke is no faster at 32 than at 8
#: (benchmarks/RESULTS.md, section 5). The command line's ``--batch-size`` has the same bound.
MAX_BATCH_SIZE = 256


class ModelError(Exception):
    """A model that cannot be loaded or used; the message is one line for the user."""


@dataclass(frozen=True)
class ClassifierOptions:
    """How to build a :class:`Classifier`.

    Attributes:
        model: path to a ``.tflite`` file, a shipped model's name (``SHIPPED_MODELS``), or the
            model's bytes (``bytes``, ``bytearray``, ``memoryview``, any buffer); None means
            ``$EDGEFER_MODEL``, else the shipped default model.
        labels: labels (str, in output order) for a model without an embedded spec (overrides
            nothing otherwise); any sequence, kept as a tuple.
        normalization: input range for a model without an embedded spec (see ``NORMALIZATIONS``).
        num_threads: interpreter threads, >= 1; None means all cores available to this process.
        batch_size: images per ``invoke``, 1 to ``MAX_BATCH_SIZE`` (256); fixed for the
            classifier's life (resizing the input tensor per batch would re-initialise XNNPACK).
        runtime: ``"ai-edge-litert"``, ``"tflite-runtime"`` or ``"tensorflow"`` (its
            ``tf.lite``; seconds to import); None picks the first importable, in that order.

    Raises:
        TypeError: a field of the wrong type (``batch_size="4"``, ``model=5``, ``labels`` one
            str).
        ValueError: ``batch_size`` or ``num_threads`` out of range, an unknown normalisation
            or runtime.
    """

    model: str | os.PathLike | bytes | bytearray | memoryview | None = None
    labels: tuple[str, ...] | None = None
    normalization: str = "0..1"
    num_threads: int | None = None
    batch_size: int = 16
    runtime: str | None = None

    def __post_init__(self) -> None:
        # Checked here, when the options are made, not mid-run: "4" from a config file failed
        # as "'<' not supported between 'str' and 'int'", and a batch of 4000 was accepted.
        batch_size = _whole("batch_size", self.batch_size)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
        object.__setattr__(self, "batch_size", batch_size)  # numpy integers: a plain int
        if self.num_threads is not None:
            num_threads = _whole("num_threads", self.num_threads)
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1 (None: all cores), got {num_threads}")
            object.__setattr__(self, "num_threads", num_threads)
        if self.labels is not None:
            object.__setattr__(self, "labels", _label_names(self.labels))
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {self.normalization!r}; one of {', '.join(NORMALIZATIONS)}"
            )
        runtime = self.runtime
        if runtime is not None and not isinstance(runtime, str):
            raise TypeError(f"runtime must be a str or None, got {type(runtime).__name__}")
        if runtime and not known_runtime(runtime):
            # Refused only by Classifier(...), as if no runtime were installed.
            raise ValueError(
                f"unknown runtime {runtime!r}; one of {runtime_names()} (None: the first)"
            )
        model = self.model
        if not (model is None or isinstance(model, str | os.PathLike) or _is_buffer(model)):
            raise TypeError(
                "model must be a path, a shipped model's name, the model's bytes or None, "
                f"got {type(model).__name__}"
            )


def _whole(name: str, value: object) -> int:
    """``value`` as an int (numpy integers too); TypeError for a str, float or bool."""
    if isinstance(value, bool):  # an int to Python, but batch_size=True is a mistake
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def _label_names(value: object) -> tuple[str, ...]:
    """``value`` as a tuple of labels; TypeError for one str (a labels.txt's text gave "not
    unique", or as many labels as it has letters) or for items that are not str."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"labels must be a sequence of label names, got one {type(value).__name__} "
            "(a file's text: split it into lines)"
        )
    try:
        labels = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"labels must be a sequence of label names, got {type(value).__name__}"
        ) from None
    for label in labels:
        if not isinstance(label, str):
            raise TypeError(f"labels must be str, got {type(label).__name__} {label!r}")
    return labels


def _is_buffer(value: object) -> bool:
    """Whether ``value`` holds bytes (bytes, bytearray, memoryview, mmap, a numpy array)."""
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _read_model(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        names = ", ".join(SHIPPED_MODELS)
        raise ModelError(f"model not found: {path} (a .tflite file, or one of: {names})") from exc
    except IsADirectoryError as exc:
        raise ModelError(f"model path is a directory: {path}") from exc
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror or exc}") from exc


def _not_tflite(blob: bytes, body: bytes, runtime_message: str, runtime: Runtime) -> str:
    """Why the runtime refused a model file, in the user's terms."""
    if not blob:
        return "not a TFLite model: the file is empty"
    if blob.startswith(b"PK\x03\x04") and not body:
        return "not a TFLite model: a zip archive (a Keras .keras model? `edgefer convert` it)"
    if blob.startswith(b"\x89HDF"):
        return "not a TFLite model: an HDF5 file (a Keras .h5 model? `edgefer convert` it)"
    if not is_tflite(body):
        return "not a TFLite model: no TFLite flatbuffer identifier (TFL3) at its start"
    first = runtime_message.splitlines()[0]
    if "Didn't find op for builtin opcode" in first or "unresolved custom op" in first:
        # A valid model with an op (or op version) newer than this runtime: tflite-runtime 2.14
        # on 32-bit Pi OS, a model converted by a recent TensorFlow for LiteRT.
        return f"{runtime.name} {runtime.version} cannot run this model: {first}"
    return f"not a valid TFLite model: {first}"


def _unpreparable(runtime_message: str, runtime: Runtime) -> str:
    """Why the runtime could not make a loaded model's tensors ready, on one line: its message
    runs its delegate's lines together, hundreds of characters."""
    first = " ".join(runtime_message.split("\n", 1)[0].split())
    if len(first) > 120:
        first = first[:117] + "..."
    return (
        f"{runtime.name} {runtime.version} cannot prepare this model (damaged, or not "
        f"supported by this runtime): {first}"
    )


def _resolve_spec(
    blob: bytes, options: ClassifierOptions, input_shape: tuple[int, ...]
) -> ModelSpec:
    try:
        spec = read_spec(blob)
    except SpecError as exc:
        raise ModelError(str(exc)) from exc
    if spec is not None:
        return spec
    if not options.labels:
        raise ModelError(
            "model has no embedded edgefer spec (labels, input size, normalisation): convert it "
            "with `edgefer convert`, or give its labels (--labels FILE; from Python, "
            "labels=[...])"
        )
    try:
        return ModelSpec.from_normalization(
            options.normalization,
            labels=options.labels,
            input_size=(input_shape[1], input_shape[2]),
            channels=input_shape[3],
            name="unnamed",
        )
    except SpecError as exc:
        raise ModelError(str(exc)) from exc


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor -> float32. Widened to int64 first: int8 - zero_point would wrap around."""
    return (scale * (values.astype(np.int64) - zero_point)).astype(np.float32)


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """float -> integer tensor of ``dtype``, rounded and clipped to its range."""
    info = np.iinfo(dtype)
    q = np.round(values / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def to_probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """Model output rows -> probabilities summing to 1 (int8 softmax rows drift by ~1/256)."""
    if output == "logits":
        return softmax(raw)
    raw = np.clip(raw, 0.0, None)
    total = raw.sum(axis=-1, keepdims=True)
    uniform = np.full_like(raw, 1.0 / raw.shape[-1])
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), uniform)


class Classifier:
    """Classifies batches of decoded face images with a TFLite model.

    Use :meth:`create_from_model_path` or :meth:`create_from_options`; close it (or use it as a
    context manager) to release the interpreter. One classifier may be shared by threads: its
    calls take turns (an interpreter runs one batch at a time); for batches on several cores at
    once, give each thread its own classifier.
    """

    def __init__(self, options: ClassifierOptions) -> None:
        """Raises ModelError for a missing, unreadable or inconsistent model; RuntimeMissingError
        when no TFLite runtime is installed; TypeError when ``options`` is not a
        :class:`ClassifierOptions` (options themselves are checked when they are made)."""
        if not isinstance(options, ClassifierOptions):
            hint = (
                " (for a model file: Classifier.create_from_model_path)"
                if isinstance(options, str | os.PathLike)
                else ""
            )
            raise TypeError(f"expected ClassifierOptions, got {type(options).__name__}{hint}")
        self.options = options
        # One interpreter, one set of tensors: a second thread's set_tensor/invoke in between
        # made the first's invoke raise ("at least 1 reference to internal data").
        self._lock = threading.Lock()
        self.runtime: Runtime = load_runtime(options.runtime)
        self.num_threads = options.num_threads or default_threads()
        #: The model's file (None for a model given as bytes): the default model, one named by
        #: $EDGEFER_MODEL or a shipped model's name, resolved once.
        self.path: Path | None = (
            None
            if options.model is not None and not isinstance(options.model, str | os.PathLike)
            else model_path(options.model)
        )
        # A model from the environment is named as such: a typo in a service's environment
        # file is otherwise a path nobody knows where to look for.
        from_env = os.environ.get("EDGEFER_MODEL") if options.model is None else None
        try:
            self.model_bytes = bytes(options.model) if self.path is None else _read_model(self.path)
        except ModelError as exc:
            if not from_env:
                raise
            raise ModelError(f"$EDGEFER_MODEL={from_env}: {exc}") from exc.__cause__
        try:
            self._load(options)
        except ModelError as exc:
            # Which file: the default model, $EDGEFER_MODEL and --model all end up here.
            if self.path is None:
                raise
            where = str(self.path)
            if from_env:
                where = f"$EDGEFER_MODEL={from_env}" + (
                    "" if where == from_env else f" ({self.path})"
                )
            raise ModelError(f"{where}: {exc}") from exc.__cause__

    def _load(self, options: ClassifierOptions) -> None:
        body = flatbuffer(self.model_bytes)
        try:
            if not body:  # the runtime would only say that no model was given
                raise ValueError("empty model")
            # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on fd 2; errors still raise.
            with quiet_fd(2):
                self._interpreter = self.runtime.interpreter_class(
                    model_content=body, num_threads=self.num_threads
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(_not_tflite(self.model_bytes, body, str(exc), self.runtime)) from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        shape = tuple(int(x) for x in inputs[0]["shape"])
        if len(shape) != 4:
            raise ModelError(f"expected an image input (N, H, W, C), got shape {shape}")
        self.spec = _resolve_spec(self.model_bytes, options, shape)
        self._check_shapes(shape, tuple(int(x) for x in outputs[0]["shape"]))
        self.batch_size = self._fix_batch(inputs[0], options.batch_size)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @classmethod
    def create_from_model_path(cls, path: str | os.PathLike, **kwargs: object) -> Classifier:
        """A classifier for the model at ``path``; kwargs are :class:`ClassifierOptions` fields."""
        return cls(ClassifierOptions(model=path, **kwargs))  # type: ignore[arg-type]

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> Classifier:
        return cls(options)

    def _check_shapes(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        spec = self.spec
        expected = (*spec.input_size, spec.channels)
        if in_shape[1:] != expected:
            raise ModelError(
                f"model input is {in_shape[1:]} (H, W, C) but its spec says {expected}"
            )
        if len(out_shape) < 2 or any(d != 1 for d in out_shape[1:-1]):
            # A segmentation or detection model (an output per pixel or box): not refused,
            # its first batch ended the run in a numpy broadcast traceback. (Scores as 1x1
            # pixels, (N, 1, 1, labels), are one per label all the same: a 1x1 conv head.)
            raise ModelError(
                f"model output is {out_shape[1:]} per image, not one score per label "
                f"({len(spec.labels)},): not an image classifier"
            )
        if out_shape[-1] != len(spec.labels):
            raise ModelError(f"model has {out_shape[-1]} outputs but {len(spec.labels)} labels")

    def _fix_batch(self, detail: dict, batch_size: int) -> int:
        shape = [batch_size, *detail["shape"][1:]]
        try:
            with quiet_fd(2):
                if int(detail["shape"][0]) != batch_size:
                    self._interpreter.resize_tensor_input(detail["index"], shape)
                self._interpreter.allocate_tensors()
            return batch_size
        except (ValueError, RuntimeError):
            pass
        # A model frozen to batch 1 cannot be resized: run it one image at a time.
        try:
            with quiet_fd(2):
                self._interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            # A damaged model (its quantization garbled, XNNPACK refuses it) got this far, and
            # ended the command in a RuntimeError traceback (exit 1).
            raise ModelError(_unpreparable(str(exc), self.runtime)) from exc
        return 1

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._output["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input tensor; (0.0, 0) when it is float."""
        return tuple(self._input["quantization"])

    @property
    def output_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the output tensor; (0.0, 0) when it is float."""
        return tuple(self._output["quantization"])

    def _prepare(self, pixels: np.ndarray) -> np.ndarray:
        x = normalize(pixels, self.spec.mean, self.spec.std)
        if np.issubdtype(self.input_dtype, np.integer):
            scale, zero_point = self._input["quantization"]
            return quantize(x, scale, zero_point, self.input_dtype)
        return x.astype(self.input_dtype)

    def _scores(self, raw: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.output_dtype, np.integer):
            scale, zero_point = self._output["quantization"]
            raw = dequantize(raw, scale, zero_point)
        return to_probabilities(raw.astype(np.float32), self.spec.output)

    def _check_pixels(self, pixels: np.ndarray) -> None:
        """Refuses what the model would turn into confident garbage rather than an error: a
        float image in 0..1 (or uint16, bool) was quantised as 0..255 and classified."""
        expected = (*self.spec.input_size, self.spec.channels)
        if not isinstance(pixels, np.ndarray):
            raise TypeError(f"expected a numpy array of images, got {type(pixels).__name__}")
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            hint = ""
            if pixels.shape == expected:
                hint = " (one image: image[None])"
            elif pixels.shape == expected[:2] and expected[2] == 1:  # grey, without its axis
                hint = " (one image: image[None, ..., None])"
            raise ValueError(
                f"expected images of shape (n, {', '.join(map(str, expected))}), "
                f"got {pixels.shape}{hint}"
            )
        if pixels.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 pixels 0..255, got {pixels.dtype} (the model's normalisation "
                "is applied here: pass the image as decoded, not scaled)"
            )

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, len(labels))`` for uint8 images ``(n, H, W, C)`` of any n >= 0.

        Batches are padded to the fixed batch size (padding rows are discarded).

        Raises:
            TypeError: ``pixels`` is not a numpy array.
            ValueError: not uint8, or not of the model's ``(H, W, C)``; the classifier is closed.
        """
        self._check_pixels(pixels)
        with self._lock:
            return self._predict(self._open_interpreter(), pixels)

    def _predict(self, interpreter, pixels: np.ndarray) -> np.ndarray:
        expected = pixels.shape[1:]
        out = np.empty((len(pixels), len(self.labels)), dtype=np.float32)
        for start in range(0, len(pixels), self.batch_size):
            chunk = pixels[start : start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                pad = np.zeros((self.batch_size - n, *expected), dtype=pixels.dtype)
                chunk = np.concatenate([chunk, pad])
            interpreter.set_tensor(self._input["index"], self._prepare(chunk))
            interpreter.invoke()
            raw = interpreter.get_tensor(self._output["index"])
            out[start : start + n] = self._scores(raw[:n].reshape(n, -1))
        return out

    def quantization(self) -> str:
        """A short description of the model's numeric format, e.g. ``full integer (int8 in /
        int8 out)``.

        Raises:
            ValueError: the classifier is closed.
        """
        with self._lock:
            details = self._open_interpreter().get_tensor_details()
        tensor_types = {np.dtype(d["dtype"]).name for d in details}
        io = f"{self.input_dtype.name} in / {self.output_dtype.name} out"
        if np.issubdtype(self.input_dtype, np.integer):
            return f"full integer ({io})"
        if "int8" in tensor_types:
            return f"dynamic range int8 weights ({io})"
        if "float16" in tensor_types:
            return f"float16 weights ({io})"
        return f"float32 ({io})"

    def _open_interpreter(self):
        if self._interpreter is None:
            raise ValueError("classifier is closed")
        return self._interpreter

    def close(self) -> None:
        """Releases the interpreter; the classifier cannot classify after this. Idempotent.

        A call under way on another thread finishes (it holds the interpreter); close does
        not wait for it."""
        # Not under the lock: `edgefer watch` gives up on a hung worker after 10 s and must
        # then exit for a restart; waiting here for its batch hung it as long as the batch.
        self._interpreter = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

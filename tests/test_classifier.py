import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import KINDS, LABELS, synth_images

from edgefer.classifier import (
    Classifier,
    ClassifierOptions,
    ModelError,
    dequantize,
    quantize,
    softmax,
    to_probabilities,
)
from edgefer.runtime import RuntimeMissingError, default_threads, load_runtime
from edgefer.shipped import default_model_path
from edgefer.spec import ModelSpec, embed_spec, flatbuffer, read_spec


@pytest.fixture(scope="module")
def fixed_images():
    return synth_images(200, seed=42)


@pytest.fixture(scope="module")
def keras_probs(tiny_keras, fixed_images):
    import tensorflow as tf

    model = tf.keras.models.load_model(tiny_keras, compile=False)
    return model.predict(fixed_images[0].astype(np.float32), verbose=0)


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_kind_agrees_with_keras(tiny_models, kind, fixed_images, keras_probs):
    x, y = fixed_images
    with Classifier.create_from_model_path(tiny_models[kind], batch_size=8, num_threads=1) as c:
        probs = c.predict(x)
    assert probs.shape == (len(x), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    agreement = np.mean(probs.argmax(1) == keras_probs.argmax(1))
    assert agreement >= 0.99, (kind, agreement)
    assert np.mean(probs.argmax(1) == y) >= 0.9  # the tiny model did learn the task
    tolerance = {"none": 1e-5, "float16": 5e-3, "dynamic": 0.05, "int8": 0.05}[kind]
    assert np.max(np.abs(probs - keras_probs)) <= tolerance


def test_int8_model_has_int8_io(int8_model):
    with Classifier.create_from_model_path(int8_model) as c:
        assert c.input_dtype == np.int8 and c.output_dtype == np.int8
        assert c.quantization().startswith("full integer")
        assert c.labels == LABELS


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 33])
def test_any_count_is_padded_to_the_fixed_batch(int8_model, fixed_images, n):
    x = fixed_images[0][:n]
    with Classifier.create_from_model_path(int8_model, batch_size=8) as c:
        assert c.batch_size == 8
        batched = c.predict(x)
    with Classifier.create_from_model_path(int8_model, batch_size=1) as c:
        single = c.predict(x)
    assert batched.shape == (n, 3)
    np.testing.assert_allclose(batched, single, atol=1e-6)


def test_model_without_spec_needs_labels(tmp_path, tiny_models):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flatbuffer(tiny_models["none"].read_bytes()))
    with pytest.raises(ModelError, match="no embedded edgefer spec") as exc:
        Classifier.create_from_model_path(bare)
    assert "labels=[...]" in str(exc.value)  # not only the command line's --labels FILE
    with Classifier.create_from_model_path(bare, labels=LABELS, normalization="0..255") as c:
        assert c.labels == LABELS and c.spec.input_size == (16, 16)
    with pytest.raises(ModelError, match="3 outputs but 2 labels"):
        Classifier.create_from_model_path(bare, labels=("a", "b"))


def test_spec_that_contradicts_the_model(tmp_path, tiny_models):
    wrong = ModelSpec(labels=("a", "b", "c"), input_size=(48, 48), channels=1)
    path = tmp_path / "wrong.tflite"
    path.write_bytes(embed_spec(tiny_models["none"].read_bytes(), wrong))
    with pytest.raises(ModelError, match="spec says"):
        Classifier.create_from_model_path(path)


def test_a_model_that_is_not_a_classifier_is_refused_at_load(tmp_path):
    # A segmentation-like model (one softmax per pixel, 3 channels for 3 labels) loaded, and
    # `edgefer classify` ended at its first batch in a numpy broadcast traceback.
    import tensorflow as tf
    from PIL import Image
    from typer.testing import CliRunner

    from edgefer.cli import EXIT_USAGE, app

    keras = tf.keras
    inputs = keras.Input((16, 16, 1))
    per_pixel = keras.layers.Conv2D(len(LABELS), 3, padding="same", activation="softmax")(inputs)
    blob = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, per_pixel)).convert()
    path = tmp_path / "per-pixel.tflite"
    path.write_bytes(embed_spec(blob, ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)))
    with pytest.raises(ModelError, match=r"output is \(16, 16, 3\) per image, not one score"):
        Classifier.create_from_model_path(path)
    Image.new("L", (16, 16)).save(tmp_path / "x.png")
    args = ["classify", str(tmp_path / "x.png"), "-m", str(path), "-o", str(tmp_path / "o.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_USAGE, result.exception
    assert "not an image classifier" in result.output


def test_a_classifier_whose_scores_come_as_1x1_pixels_is_read(tmp_path):
    # A classifier ending in a 1x1 convolution (MobileNet v1's own head) gives its scores as
    # (N, 1, 1, labels): one score per label all the same, as pycoral's adapters take it.
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input((16, 16, 1))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    scores = keras.layers.Conv2D(len(LABELS), 1, activation="softmax")(pooled)
    flat = keras.layers.Flatten()(scores)
    spec = ModelSpec(labels=LABELS, input_size=(16, 16), channels=1)
    probs = []
    for name, out in (("1x1", scores), ("flat", flat)):
        blob = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, out)).convert()
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(embed_spec(blob, spec))
        pixels = np.arange(2 * 16 * 16, dtype=np.uint8).reshape(2, 16, 16, 1)
        with Classifier.create_from_model_path(path) as classifier:
            probs.append(classifier.predict(pixels))
    assert probs[0].shape == (2, len(LABELS))
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)


@pytest.mark.parametrize("content", [b"", b"not a model at all" * 10])
def test_unreadable_models(tmp_path, content):
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError):
        Classifier.create_from_model_path(path)
    with pytest.raises(ModelError, match="not found"):
        Classifier.create_from_model_path(tmp_path / "missing.tflite")


def edited_model(source: Path, path: Path, edit) -> Path:
    """``source`` with ``edit(model, schema)`` applied to its unpacked flatbuffer, and its
    spec, written to ``path``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    blob = source.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer(blob), 0))
    edit(model, schema)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(embed_spec(bytes(builder.Output()), read_spec(blob)))
    return path


def test_a_model_with_ops_newer_than_the_runtime_is_not_called_invalid(tmp_path, int8_model):
    # A valid model converted for a newer runtime (as tflite-runtime 2.14 on 32-bit Pi OS meets
    # them) was "not a valid TFLite model"; it is this runtime, named, that cannot run it.
    def newer(model, schema):
        for code in model.operatorCodes:
            code.version = 99  # no runtime has a version 99 of any builtin op

    path = edited_model(int8_model, tmp_path / "newer.tflite", newer)
    runtime = load_runtime()
    with pytest.raises(ModelError) as caught:
        Classifier.create_from_model_path(path)
    message = str(caught.value)
    assert f"{runtime.name} {runtime.version} cannot run this model: " in message
    assert "version '99'" in message
    assert "not a valid" not in message


def test_a_damaged_model_that_the_runtime_cannot_prepare_is_a_model_error(tmp_path):
    # A model whose quantization is garbled (bit rot on an SD card) loads, but XNNPACK refuses
    # it when its tensors are made: that RuntimeError ended `edgefer classify` in a traceback,
    # exit 1, its message hundreds of characters run together.
    def damaged(model, schema):
        weights = next(
            t
            for t in model.subgraphs[0].tensors
            if t.type == schema.TensorType.INT8 and t.buffer and len(t.quantization.zeroPoint) > 1
        )
        weights.quantization.zeroPoint = np.full(len(weights.quantization.zeroPoint), 1000)

    path = edited_model(default_model_path(), tmp_path / "damaged.tflite", damaged)
    runtime = load_runtime()
    with pytest.raises(ModelError) as caught:
        Classifier.create_from_model_path(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {runtime.name} {runtime.version} cannot prepare this ")
    assert "zero-point" in message and "\n" not in message and len(message) < 300


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, r"^batch_size must be 1\.\.256, got 0$"),
        # No bound in the library (the CLI's was 256): 4000 sized the tensors for 627 MB.
        ({"batch_size": 257}, ValueError, r"^batch_size must be 1\.\.256, got 257$"),
        # A value read from a config file: "'<' not supported between 'str' and 'int'".
        ({"batch_size": "4"}, TypeError, r"^batch_size must be an int, got str '4'$"),
        ({"batch_size": 4.0}, TypeError, r"^batch_size must be an int, got float 4\.0$"),
        ({"batch_size": True}, TypeError, r"^batch_size must be an int, got bool$"),
        ({"num_threads": 0}, ValueError, r"^num_threads must be >= 1 \(None: all cores\), got 0$"),
        (
            {"num_threads": -2},
            ValueError,
            r"^num_threads must be >= 1 \(None: all cores\), got -2$",
        ),
        ({"num_threads": "2"}, TypeError, r"^num_threads must be an int, got str '2'$"),
        ({"normalization": "0-1"}, ValueError, r"^unknown normalization '0-1'; one of 0\.\.255, "),
        ({"model": 5}, TypeError, r"^model must be a path, a shipped model's name, the model's "),
        # A labels.txt's text: its letters were the labels, or the model load said "not unique".
        (
            {"labels": "abcdefg"},
            TypeError,
            r"^labels must be a sequence of label names, got one str \(a file's text: split it",
        ),
        ({"labels": 7}, TypeError, r"^labels must be a sequence of label names, got int$"),
        ({"labels": [1, 2]}, TypeError, r"^labels must be str, got int 1$"),
        # Refused only by Classifier(...), as a missing runtime (RuntimeMissingError).
        (
            {"runtime": "litert"},
            ValueError,
            r"^unknown runtime 'litert'; one of ai-edge-litert, tflite-runtime, tensorflow \(",
        ),
        ({"runtime": 2}, TypeError, r"^runtime must be a str or None, got int$"),
    ],
)
def test_bad_options_are_refused_when_the_options_are_made(fields, error, message):
    # Not at Classifier(...) and not mid-run: the options alone are wrong, before any model.
    with pytest.raises(error, match=message):
        ClassifierOptions(**fields)


def test_labels_of_any_sequence_are_kept_as_a_tuple():
    options = ClassifierOptions(labels=["top", "left", "center"])
    assert options.labels == ("top", "left", "center")
    hash(options)  # frozen: a list in it made the options unhashable


def test_numpy_integers_are_options_too():
    options = ClassifierOptions(batch_size=np.int64(8), num_threads=np.int32(2))
    assert (options.batch_size, options.num_threads) == (8, 2)
    assert type(options.batch_size) is int and type(options.num_threads) is int
    assert ClassifierOptions(batch_size=256).batch_size == 256


def test_a_path_instead_of_options_says_which_constructor_takes_it():
    # It was "AttributeError: 'str' object has no attribute 'batch_size'".
    with pytest.raises(TypeError, match=r"^expected ClassifierOptions, got str \(for a model"):
        Classifier("model.tflite")  # type: ignore[arg-type]


def test_the_threads_option_reaches_the_interpreter(interpreters):
    # Nothing else tells: a classifier given 3 threads whose interpreter got the runtime's
    # default still classified, and said "interpreter threads: 3" in watch's log.
    with Classifier.create_from_model_path(default_model_path(), num_threads=3) as c:
        assert c.num_threads == 3
    with Classifier.create_from_model_path(default_model_path()) as c:  # all cores it may use
        assert c.num_threads == default_threads()
    assert [i.kwargs["num_threads"] for i in interpreters] == [3, default_threads()]


def test_model_given_as_bytes(int8_model, fixed_images):
    with Classifier(ClassifierOptions(model=int8_model.read_bytes())) as c:
        assert c.predict(fixed_images[0][:2]).shape == (2, 3)
        assert c.path is None
    with Classifier.create_from_model_path(str(int8_model)) as c:
        assert c.path == int8_model


def test_stock_interpreter_ignores_the_appended_spec(int8_model):
    runtime = load_runtime()
    interpreter = runtime.interpreter_class(model_content=int8_model.read_bytes(), num_threads=1)
    interpreter.allocate_tensors()
    assert interpreter.get_output_details()[0]["shape"][-1] == 3


def _hide(monkeypatch, *modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import of a None entry raises ImportError


#: TensorFlow, the last resort: installed here (the train extra), so hidden where no runtime
#: is to be found (the interpreter's own module too: an earlier test may have imported it).
NO_TENSORFLOW = ("tensorflow", "tensorflow.lite.python.interpreter")


def _fake_tflite_runtime(monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = Interpreter  # same API: stands in for the 32-bit Pi OS wheel
    package = types.ModuleType("tflite_runtime")
    package.interpreter = fake
    _hide(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter", *NO_TENSORFLOW)
    monkeypatch.setitem(sys.modules, "tflite_runtime", package)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)


def test_falls_back_to_tflite_runtime(monkeypatch, int8_model, fixed_images):
    _fake_tflite_runtime(monkeypatch)
    monkeypatch.setattr("edgefer.runtime._numpy_major", lambda: 1)
    runtime = load_runtime()
    assert runtime.name == "tflite-runtime"
    with Classifier.create_from_model_path(int8_model) as c:
        assert c.runtime.name == "tflite-runtime"
        assert c.predict(fixed_images[0][:4]).shape == (4, 3)


def test_tflite_runtime_beside_numpy_2_is_named_not_crashed_into(monkeypatch):
    # tflite-runtime 2.14 asks only for "numpy": beside numpy 2 it imported, then the first
    # Interpreter() ended in a SystemError traceback (exit 1, which a service restarts).
    _fake_tflite_runtime(monkeypatch)
    monkeypatch.setattr("edgefer.runtime._numpy_major", lambda: 2)
    with pytest.raises(RuntimeMissingError, match=r"tflite-runtime: needs numpy < 2"):
        load_runtime()


def test_litert_1_0_beside_numpy_2_is_named_not_crashed_into(monkeypatch):
    # LiteRT 1.0.x (the last wheels for Intel Macs) was built against numpy 1, as tflite-runtime:
    # beside numpy 2 the first Interpreter() raised a SystemError, a traceback from `classify`.
    # (Measured: 1.0.0 and 1.0.1 fail so, 1.1.2 and 1.2.0 run.)
    _hide(monkeypatch, "tflite_runtime", "tflite_runtime.interpreter", *NO_TENSORFLOW)
    monkeypatch.setattr("edgefer.runtime._numpy_major", lambda: 2)
    monkeypatch.setattr("edgefer.runtime._version", lambda dist, module: "1.0.1")
    with pytest.raises(RuntimeMissingError, match=r"ai-edge-litert 1\.0\.1: needs numpy < 2"):
        load_runtime()
    monkeypatch.setattr("edgefer.runtime._version", lambda dist, module: "1.2.0")
    assert load_runtime().version == "1.2.0"
    monkeypatch.setattr("edgefer.runtime._version", lambda dist, module: "1.0.1")
    monkeypatch.setattr("edgefer.runtime._numpy_major", lambda: 1)
    assert load_runtime().version == "1.0.1"


def test_no_runtime_at_all(monkeypatch):
    _hide(
        monkeypatch,
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
        *NO_TENSORFLOW,
    )
    with pytest.raises(RuntimeMissingError, match="pip install ai-edge-litert") as caught:
        load_runtime()
    # `pip install .` brings numpy 2: tflite-runtime alone beside it is the next error.
    assert "pip install 'numpy<2' tflite-runtime" in str(caught.value)
    with pytest.raises(RuntimeMissingError, match="unknown runtime"):
        load_runtime("onnxruntime")


NO_32_BIT_ARM_WHEELS = "no TFLite runtime has wheels for 32-bit ARM on Python 3.12 or later"


@pytest.mark.parametrize(
    ("system", "machine", "python", "bits", "advice"),
    [
        ("linux", "x86_64", (3, 12), 64, "pip install ai-edge-litert, or on 32-bit Pi OS"),
        ("linux", "armv7l", (3, 11), 32, "pip install 'numpy<2' tflite-runtime"),
        # 32-bit Pi OS 13 (Python 3.13), on its own kernel or on a 64-bit one (aarch64):
        # tflite-runtime 2.14's 32-bit ARM wheels stop at cp311, so its advice only failed.
        ("linux", "armv7l", (3, 13), 32, NO_32_BIT_ARM_WHEELS),
        ("linux", "aarch64", (3, 13), 32, NO_32_BIT_ARM_WHEELS),
        ("linux", "aarch64", (3, 13), 64, "pip install ai-edge-litert, or on 32-bit Pi OS"),
        # Pi 1, Zero and Zero W: no runtime has armv6l wheels, on any Python.
        ("linux", "armv6l", (3, 11), 32, "no TFLite runtime has wheels for armv6l"),
        ("linux", "armv6l", (3, 13), 32, "no TFLite runtime has wheels for armv6l"),
        # Neither runtime has wheels there: "pip install ai-edge-litert" only failed again.
        ("darwin", "x86_64", (3, 11), 64, "pip install 'ai-edge-litert==1.0.1' 'numpy<2'; on"),
        ("win32", "ARM64", (3, 13), 64, "Windows-on-ARM wheels: use an x64 Python"),
    ],
)
def test_no_runtime_says_what_to_install_on_this_platform(
    monkeypatch, system, machine, python, bits, advice
):
    from edgefer.runtime import install_hint

    assert advice in install_hint(system, machine, python, bits)
    monkeypatch.setattr("platform.machine", lambda: machine)
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr("edgefer.runtime._this_python", lambda: (python, bits))
    _hide(monkeypatch, "ai_edge_litert.interpreter", "tflite_runtime.interpreter", *NO_TENSORFLOW)
    with pytest.raises(RuntimeMissingError, match=r"^no TFLite runtime found \(") as caught:
        load_runtime()
    assert advice in str(caught.value) and "\n" not in str(caught.value)


def test_a_runtime_forced_by_the_environment_is_named_when_it_cannot_be_used(monkeypatch):
    # EDGEFER_RUNTIME=tflite-runtime left in a service's environment file beside an installed
    # LiteRT said "no TFLite runtime found (pip install ai-edge-litert ...)".
    _hide(monkeypatch, "tflite_runtime", "tflite_runtime.interpreter")
    monkeypatch.setenv("EDGEFER_RUNTIME", "tflite-runtime")
    with pytest.raises(RuntimeMissingError) as caught:
        load_runtime()
    assert str(caught.value).startswith("$EDGEFER_RUNTIME=tflite-runtime cannot be used: ")
    assert "no TFLite runtime found" not in str(caught.value)
    monkeypatch.setenv("EDGEFER_RUNTIME", "litert")
    with pytest.raises(RuntimeMissingError, match=r"^\$EDGEFER_RUNTIME=litert: unknown runtime"):
        load_runtime()
    with pytest.raises(RuntimeMissingError, match="^runtime 'tflite-runtime' cannot be used"):
        load_runtime("tflite-runtime")
    assert load_runtime("ai-edge-litert").name == "ai-edge-litert"  # the argument comes first


def test_tensorflow_is_the_last_resort_and_can_be_asked_for(
    monkeypatch, recwarn, int8_model, fixed_images
):
    # An Intel Mac has wheels of TensorFlow (2.16) but of neither runtime: with TensorFlow
    # installed there, edgefer said "no TFLite runtime found".
    import tensorflow as tf

    with Classifier.create_from_model_path(int8_model) as c:
        expected = c.predict(fixed_images[0][:8])
    monkeypatch.setenv("EDGEFER_RUNTIME", "tensorflow")
    with Classifier.create_from_model_path(int8_model) as c:
        assert (c.runtime.name, c.runtime.version) == ("tensorflow", tf.__version__)
        assert c.runtime.interpreter_class is tf.lite.Interpreter
        np.testing.assert_allclose(c.predict(fixed_images[0][:8]), expected, atol=1e-6)
    monkeypatch.delenv("EDGEFER_RUNTIME")
    _hide(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter")
    _hide(monkeypatch, "tflite_runtime", "tflite_runtime.interpreter")
    assert load_runtime().name == "tensorflow"
    # Not its five-line "tf.lite.Interpreter is deprecated" for each interpreter made.
    assert not [w for w in recwarn if "tf.lite.Interpreter is deprecated" in str(w.message)]


@pytest.mark.slow
def test_tensorflow_runtime_is_quiet_on_the_command_line(int8_model):
    # TensorFlow's import writes absl/CPU-feature notes to fd 2, and each tf.lite.Interpreter
    # a deprecation warning: a daemon's journal read them as errors.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest's
    env["EDGEFER_RUNTIME"] = "tensorflow"
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "info", str(int8_model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "runtime" in proc.stdout and "tensorflow 2." in proc.stdout
    assert proc.stderr == ""


def test_quantization_helpers():
    q = quantize(np.array([0.0, 1.0, 300.0, -300.0]), 1.0, -128, np.dtype(np.int8))
    assert q.tolist() == [-128, -127, 127, -128]
    # int8 - zero_point must not wrap around: 127 - (-128) = 255
    assert dequantize(np.array([127], np.int8), 0.5, -128).tolist() == [127.5]
    np.testing.assert_allclose(softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])
    np.testing.assert_allclose(to_probabilities(np.array([[0.5, 0.49]]), "probabilities").sum(), 1)
    np.testing.assert_allclose(to_probabilities(np.zeros((1, 4)), "probabilities"), 0.25)

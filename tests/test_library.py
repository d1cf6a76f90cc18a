"""edgefer as a library, the way an app embedding it uses it: the shipped model, real crops."""

import dataclasses
import importlib.resources
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefer.classifier import Classifier, ClassifierOptions
from edgefer.preprocess import load_image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def classifier():
    with Classifier(ClassifierOptions(num_threads=1, batch_size=4)) as c:
        yield c


@pytest.fixture(scope="module")
def crops(classifier):
    spec = classifier.spec
    return np.stack([load_image(p, spec.input_size, spec.channels) for p in SAMPLES])


@pytest.mark.parametrize(
    "scaled",
    [
        lambda x: x / 255.0,  # a Keras habit: 0..1 floats were classified as a near-black face
        lambda x: x.astype(np.float32),
        lambda x: x.astype(np.uint16) * 257,
        lambda x: x > 127,
    ],
    ids=["float 0..1", "float 0..255", "uint16", "bool"],
)
def test_pixels_other_than_uint8_are_refused_not_misread(classifier, crops, scaled):
    with pytest.raises(ValueError, match="expected uint8 pixels 0..255, got"):
        classifier.predict(scaled(crops))


def test_a_wrong_shape_says_what_the_model_wants(classifier, crops):
    one = crops[0]
    with pytest.raises(ValueError, match=r"\(n, 48, 48, 1\), got \(48, 48, 1\) \(one image: image"):
        classifier.predict(one)
    with pytest.raises(ValueError, match=r"got \(48, 48\) \(one image: image\[None, \.\.\., None"):
        classifier.predict(one[..., 0])
    with pytest.raises(ValueError, match=r"got \(3, 48, 48, 3\)$"):
        classifier.predict(np.repeat(crops, 3, axis=-1))
    with pytest.raises(TypeError, match="expected a numpy array of images, got list"):
        classifier.predict(list(crops))
    assert classifier.predict(one[None]).shape == (1, len(classifier.labels))


def test_a_closed_classifier_says_so():
    with Classifier(ClassifierOptions(num_threads=1)) as c:
        pass
    x = np.zeros((1, *c.spec.input_size, c.spec.channels), np.uint8)
    # It was an AttributeError ('NoneType' object has no attribute 'set_tensor').
    with pytest.raises(ValueError, match="^classifier is closed$"):
        c.predict(x)
    with pytest.raises(ValueError, match="^classifier is closed$"):
        c.quantization()
    c.close()  # again: no error
    assert c.labels  # what was read at load stays readable


def test_threads_may_share_a_classifier(classifier, crops):
    # Without a lock, a second thread's set_tensor/invoke in between made the first's invoke
    # raise RuntimeError ('at least 1 reference to internal data'), or could return its rows.
    images = np.concatenate([crops, crops[::-1], crops[:1]] * 8)  # 56: several batches of 4
    expected = classifier.predict(images)
    errors: list[BaseException] = []
    results: list[np.ndarray] = []

    def work(shift: int) -> None:
        try:
            for _ in range(10):
                rolled = np.roll(images, shift, axis=0)
                results.append(np.roll(classifier.predict(rolled), -shift, axis=0))
        except BaseException as exc:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(shift,)) for shift in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(results) == 40
    for probs in results:
        np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_the_package_exports_the_library_lazily_and_says_it_is_typed():
    # `from edgefer import Classifier` was an ImportError; importing the package (every
    # command does) must still load none of the library, numpy and Pillow included.
    code = (
        "import sys, edgefer\n"
        "assert not [m for m in sys.modules if m.startswith(('edgefer.', 'numpy', 'PIL'))]\n"
        "from edgefer import Classifier, Result, classify_paths, cli\n"
        "from edgefer.classifier import Classifier as C\n"
        "assert Classifier is C and {*edgefer._LAZY, '__version__'} == set(edgefer.__all__)\n"
        "assert all(getattr(edgefer, name) is not None for name in edgefer.__all__)\n"
        "try:\n"
        "    edgefer.nope\n"
        "except AttributeError as exc:\n"
        "    assert str(exc) == \"module 'edgefer' has no attribute 'nope'\"\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # PEP 561: without this marker, mypy ignores the package's annotations.
    assert (importlib.resources.files("edgefer") / "py.typed").is_file()


@pytest.mark.parametrize(
    "no_stderr",
    ["sys.stderr = None", "os.close(2)"],
    ids=["GUI app without a console (pythonw)", "daemon started with 2>&-"],
)
def test_a_classifier_is_made_in_a_process_without_stderr(no_stderr):
    # Silencing the runtime's start-up lines took stderr for granted: sys.stderr.flush() was
    # an AttributeError, os.dup(2) an OSError, and no classifier could be made.
    code = (
        f"import os, sys\nimport numpy as np\n{no_stderr}\n"
        "from edgefer import Classifier, ClassifierOptions\n"
        "with Classifier(ClassifierOptions(num_threads=1)) as c:\n"
        "    print(c.predict(np.zeros((1, 48, 48, 1), np.uint8)).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert (done.returncode, done.stdout) == (0, "(1, 7)\n"), done.stderr


def test_an_image_in_memory_is_prepared_as_its_file_is(classifier, tmp_path):
    # A camera frame or a crop an app holds had no way into the model but through a file
    # (load_image took paths only) or by copying the resize and grey conversion by hand.
    spec = classifier.spec
    frame = np.asarray(Image.open(SAMPLES[0]).convert("RGB"))  # an RGB frame, not 48x48 grey
    png = tmp_path / "frame.png"
    Image.fromarray(frame).save(png)
    image = Image.fromarray(frame)
    from_memory = load_image(image, spec.input_size, spec.channels)
    np.testing.assert_array_equal(from_memory, load_image(png, spec.input_size, spec.channels))
    assert from_memory.shape == (*spec.input_size, spec.channels)
    assert image.getpixel((0, 0)) == tuple(frame[0, 0])  # the app's image is left open


def test_close_does_not_wait_for_a_call_under_way(crops):
    # close() took the lock, so it waited for a batch under way: `edgefer watch`, giving up on
    # a hung worker after 10 s to exit 1 for a restart, then hung in classifier.close() until
    # the batch ended (for ever, if it never did).
    c = Classifier(ClassifierOptions(num_threads=1, batch_size=4))
    expected = c.predict(crops)
    real, started, go = c._interpreter, threading.Event(), threading.Event()

    class Stalled:
        def __getattr__(self, name):
            return getattr(real, name)

        def invoke(self):
            started.set()
            go.wait(30)
            real.invoke()

    c._interpreter = Stalled()
    got: list[np.ndarray] = []
    caller = threading.Thread(target=lambda: got.append(c.predict(crops)))
    caller.start()
    assert started.wait(30)
    closer = threading.Thread(target=c.close)
    closer.start()
    closer.join(5)
    closed_at_once = not closer.is_alive()
    go.set()
    caller.join()
    closer.join()
    assert closed_at_once
    np.testing.assert_allclose(got[0], expected, atol=1e-6)  # the call under way finishes
    with pytest.raises(ValueError, match="^classifier is closed$"):
        c.predict(crops)


def test_the_one_image_hint_fits_an_rgb_model():
    # For a (H, W) image the hint was image[None, ..., None] whatever the model: for a
    # 3-channel model that gives (1, H, W, 1), refused in turn. (_check_pixels reads only the
    # spec: an RGB model's, without building one.)
    from edgefer.spec import ModelSpec

    rgb = Classifier.__new__(Classifier)
    rgb.spec = ModelSpec(labels=("a", "b"), input_size=(8, 6), channels=3)
    with pytest.raises(ValueError, match=r"\(n, 8, 6, 3\), got \(8, 6\)$"):
        rgb._check_pixels(np.zeros((8, 6), np.uint8))
    with pytest.raises(ValueError, match=r"got \(8, 6, 3\) \(one image: image\[None\]\)$"):
        rgb._check_pixels(np.zeros((8, 6, 3), np.uint8))


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_a_model_in_any_buffer_loads(classifier, wrap):
    # A memoryview (a model read into a shared buffer, an mmap) was taken for a path:
    # "expected str, bytes or os.PathLike object, not memoryview".
    blob = classifier.model_bytes
    with Classifier(ClassifierOptions(model=wrap(blob), num_threads=1)) as c:
        assert c.path is None and c.model_bytes == blob and c.labels == classifier.labels


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"detector": "blazefcae"}, ValueError, r"^unknown detector 'blazefcae'; one of blaze"),
        ({"min_face": -1}, ValueError, r"^min_face must be >= 8, got -1$"),
        ({"min_face": 7}, ValueError, r"^min_face must be >= 8, got 7$"),  # as --min-face
        ({"min_face": "40"}, TypeError, r"^min_face must be an int, got str$"),
        ({"max_faces": -1}, ValueError, r"^max_faces must be >= 0, got -1$"),
        ({"margin": -0.5}, ValueError, r"^margin must be a finite number above -0\.5, got -0\.5$"),
        ({"margin": float("nan")}, ValueError, r"^margin must be a finite number above -0\.5"),
        ({"margin": "0.1"}, TypeError, r"^margin must be a number, got str$"),
        # The one field not checked: "no" (from an app's config file) aligned every crop.
        ({"align": "no"}, TypeError, r"^align must be a bool, got str$"),
        ({"align": None}, TypeError, r"^align must be a bool, got NoneType$"),
    ],
)
def test_face_options_are_checked_when_made(fields, error, message):
    # All were taken; a misspelt detector came out only at the first result of classify_photos.
    from edgefer import FaceOptions

    with pytest.raises(error, match=message):
        FaceOptions(**fields)


def test_face_options_take_what_makes_sense():
    from edgefer import FaceOptions

    options = FaceOptions(detector="haar", min_face=np.int64(8), max_faces=0, margin=-0.2)
    assert options.min_face == 8 and type(options.min_face) is int
    assert FaceOptions(margin=1).margin == 1
    assert FaceOptions(align=np.bool_(False)).align is False  # a numpy bool, made a bool


@pytest.mark.parametrize("margin", [np.float32(0.25), np.int64(0), Fraction(1, 4)])
def test_face_options_take_a_margin_of_any_real_number_type(margin):
    # min_face and max_faces took numpy integers, but a numpy margin (a float32 from an app's
    # config array) was refused as "margin must be a number, got float32"; it was taken before.
    from edgefer import FaceOptions

    options = FaceOptions(margin=margin)
    assert options.margin == float(margin) and type(options.margin) is float


def test_a_bad_call_is_an_error_of_the_call_not_of_its_first_result(classifier, monkeypatch):
    # Both are generators: a missing detector, a str for a list or workers=0 came out only
    # at next(), far from the call (or, for the str, never: one row per letter).
    import edgefer.photos
    from edgefer import classify_paths, classify_photos
    from edgefer.faces import FaceDetectorMissingError

    path = str(SAMPLES[0])
    with pytest.raises(TypeError, match=r"^expected an iterable of paths, got one str \(wrap"):
        classify_paths(classifier, path)
    with pytest.raises(TypeError, match=r"^expected an iterable of paths, got one PosixPath"):
        classify_photos(classifier, SAMPLES[0])
    with pytest.raises(ValueError, match=r"^workers must be >= 1, got 0$"):
        classify_paths(classifier, [path], workers=0)
    with pytest.raises(ValueError, match=r"^max_pixels must be >= 1, got -1$"):
        classify_photos(classifier, [path], max_pixels=-1)
    with pytest.raises(TypeError, match=r"^options must be a FaceOptions, got str$"):
        classify_photos(classifier, [path], "haar")

    def missing(*args, **kwargs):
        raise FaceDetectorMissingError("the haar detector needs OpenCV")

    monkeypatch.setattr(edgefer.photos, "open_detector", missing)
    with pytest.raises(FaceDetectorMissingError):
        classify_photos(classifier, [path])


def test_result_path_is_the_str_of_the_path_given(classifier):
    # A Path given in came back as a Path, though Result.path says str.
    from edgefer import FaceOptions, classify_paths, classify_photos

    given = [SAMPLES[0], str(SAMPLES[1]), bytes(SAMPLES[2])]
    paths = [r.path for r in classify_paths(classifier, given)]
    assert paths == [str(p) for p in SAMPLES] and all(type(p) is str for p in paths)
    photos = [group[0].path for group in classify_photos(classifier, given, FaceOptions())]
    assert photos == [str(p) for p in SAMPLES] and all(type(p) is str for p in photos)
    with pytest.raises(TypeError, match=r"^expected a path or a Pillow image, got int$"):
        list(classify_paths(classifier, [str(SAMPLES[0]), 3]))


def test_an_image_given_is_held_to_max_pixels_as_a_file_is(classifier):
    # The docstring said larger images are refused; a Pillow image (perhaps an Image.open not
    # yet decoded, with Pillow's own limit turned off by edgefer) was not checked.
    from edgefer import ImageError

    spec = classifier.spec
    frame = Image.new("RGB", (640, 480))
    with pytest.raises(ImageError, match=r"^too large: 640x480 px exceeds the 300,000 px limit$"):
        load_image(frame, spec.input_size, spec.channels, max_pixels=300_000)
    assert load_image(frame, spec.input_size, spec.channels).shape == (48, 48, 1)  # default


def test_an_image_of_no_pixels_is_an_error_not_a_face(classifier):
    # An app's crop with an empty box was resized to a black 48x48 face and labelled ('sad').
    from edgefer import FaceOptions, ImageError, classify_paths, classify_photos

    frame = np.zeros((480, 640, 3), np.uint8)
    empty = Image.fromarray(frame[100:100, 50:90])  # 40x0
    spec = classifier.spec
    with pytest.raises(ImageError, match=r"^empty image: 40x0 px$"):
        load_image(empty, spec.input_size, spec.channels)
    (row,) = classify_paths(classifier, [empty])
    assert (row.label, row.error) == (None, "empty image: 40x0 px")
    ((face_row,),) = classify_photos(classifier, [Image.new("L", (0, 0))], FaceOptions())
    assert face_row.error == "empty image: 0x0 px"


def test_faces_are_found_in_an_image_as_in_its_file(classifier, tmp_path):
    # Face detection took paths only: a camera frame had to be written to a temp file first.
    from edgefer import FaceOptions, classify_paths, classify_photos

    frame = np.asarray(Image.open(SAMPLES[0]).convert("RGB"))
    png = tmp_path / "frame.png"
    Image.fromarray(frame).save(png)
    image = Image.fromarray(frame)
    (from_file,), (from_image,) = classify_photos(classifier, [png, image], FaceOptions())
    assert from_file.ok and from_file.box is not None
    assert from_image == dataclasses.replace(from_file, path=None)
    np.testing.assert_array_equal(np.asarray(image), frame)  # the app's image: open, unchanged
    (file_row, image_row) = classify_paths(classifier, [png, image])
    assert image_row == dataclasses.replace(file_row, path=None)


def test_the_library_leaves_pillows_limit_to_the_app_and_the_commands_lift_it():
    # Importing edgefer.preprocess set Image.MAX_IMAGE_PIXELS = None for the whole process: an
    # app that embeds edgefer lost Pillow's decompression-bomb check on its own Image.open.
    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
        "import edgefer.preprocess, edgefer.photos, edgefer.classifier\n"
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS\n"
        "import edgefer.cli\n"
        "assert Image.MAX_IMAGE_PIXELS is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_library_leaves_the_apps_warning_filters_alone():
    # Importing edgefer.preprocess put a process-wide "ignore" filter first: an app that embeds
    # edgefer lost Pillow's warning for an AVIF file its own Image.open could not read.
    code = (
        "import warnings\n"
        "def ignored():\n"
        "    text = 'image file could not be identified because AVIF support not installed'\n"
        "    return any(f[0] == 'ignore' and f[1] and f[1].match(text) for f in warnings.filters)\n"
        "import edgefer, edgefer.preprocess, edgefer.photos, edgefer.pipeline, edgefer.faces\n"
        "assert not ignored()\n"
        "import edgefer.cli\n"
        "assert ignored()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_image_over_pillows_own_limit_is_a_too_large_error(tmp_path, monkeypatch):
    from edgefer.preprocess import ImageError

    Image.new("L", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 px is over twice this
    with pytest.raises(ImageError, match="too large: over Pillow's limit of 200 px"):
        load_image(tmp_path / "big.png", (48, 48), 1, max_pixels=10_000)
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "big.png", (48, 48), 1, max_pixels=1_000)


def test_an_image_over_pillows_limit_and_max_pixels_names_max_pixels(tmp_path, monkeypatch):
    # With Pillow's own limit kept (a library process), a 200 MP image came out as "over
    # Pillow's limit of 178,956,970 px (Image.MAX_IMAGE_PIXELS)", which sent one to raise the
    # wrong limit: at af9013c and with the commands it is the 64 MP max_pixels that refuses it.
    import struct
    import zlib

    from edgefer.preprocess import DEFAULT_MAX_PIXELS, ImageError

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 20000, 10000, 8, 0, 0, 0, 0)  # a header only
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
    png += struct.pack(">I", zlib.crc32(ihdr)) + b"\x00\x00\x00\x00IDAT" + b"\x00" * 8
    (tmp_path / "huge.png").write_bytes(png)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's own
    assert DEFAULT_MAX_PIXELS == 64_000_000
    with pytest.raises(ImageError, match=r"^too large: over 178,956,970 px exceeds the 64,000,"):
        load_image(tmp_path / "huge.png", (48, 48), 1)


def test_the_face_detector_runs_on_the_runtime_the_classifier_was_given(monkeypatch, tmp_path):
    # ClassifierOptions(runtime="tflite-runtime") loaded the model there, but BlazeFace took the
    # first importable runtime (LiteRT): two TFLite runtimes in one process, one not chosen.
    import types

    from ai_edge_litert.interpreter import Interpreter

    from edgefer import FaceOptions, classify_photos

    made = []

    class Pinned(Interpreter):  # stands in for tflite-runtime's, whose API is the same
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(Path(kwargs.get("model_path") or "model_content").name)

    module = types.ModuleType("tflite_runtime.interpreter")
    module.Interpreter = Pinned
    package = types.ModuleType("tflite_runtime")
    package.interpreter = module
    monkeypatch.setitem(sys.modules, "tflite_runtime", package)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", module)
    monkeypatch.setattr("edgefer.runtime._numpy_major", lambda: 1)
    monkeypatch.setenv("EDGEFER_RUNTIME", "ai-edge-litert")  # the options come first
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "grey").save(photo)
    with Classifier(ClassifierOptions(runtime="tflite-runtime", num_threads=1)) as c:
        assert c.runtime.name == "tflite-runtime"
        groups = list(classify_photos(c, [photo], FaceOptions(), workers=1))
    assert groups[0][0].error == "no face"
    # The model, the detector checked before the run, the detector of the one worker.
    assert made == ["model_content", *["face_detection_short_range.tflite"] * 2]

"""HEIC/HEIF (phones' default) and AVIF images: decoded where the install can, and where it
cannot, an error row that says what to install instead of the file passed over.

pi-heif (the ``heif`` extra) decodes; pillow-heif is here only to encode the test files."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from conftest import gradient_image
from PIL import Image, features

from edgefer.faces import load_photo
from edgefer.preprocess import IMAGE_SUFFIXES, avif_available, load_image
from edgefer.watch import is_candidate

pytest.importorskip("pi_heif")
pillow_heif = pytest.importorskip("pillow_heif")
pillow_heif.register_heif_opener()  # the encoder, to make test files

# A fresh interpreter in which no HEIF plugin and not Pillow's AVIF module can be imported.
WITHOUT_SUPPORT = (
    "import sys\n"
    "sys.modules['pi_heif'] = None\n"
    "sys.modules['pillow_heif'] = None\n"
    "sys.modules['PIL._avif'] = None\n"
    "from edgefer.cli import main\n"
    "sys.argv = ['edgefer'] + sys.argv[1:]\n"
    "main()\n"
)


@pytest.fixture
def gradient():
    return gradient_image(80, 48)


def near(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) < 6


def test_suffixes_are_picked_up():
    for name in ("IMG_0001.HEIC", "x.heif", "DSCF0001.HIF", "y.avif"):
        assert is_candidate(name)
    assert {".heic", ".heif", ".avif"} <= IMAGE_SUFFIXES


def test_heic_decodes_like_the_same_png_and_upright(tmp_path, gradient):
    gradient.save(tmp_path / "g.png")
    gradient.save(tmp_path / "g.heic", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone held upright: display needs a 90 degree clockwise turn
    gradient.save(tmp_path / "rot.heic", exif=exif.tobytes(), quality=95)
    png = load_image(tmp_path / "g.png", (24, 40), 3)
    assert near(load_image(tmp_path / "g.heic", (24, 40), 3), png)
    # Turned once, not twice (pillow-heif applies the rotation and clears the EXIF tag).
    upright = load_image(tmp_path / "rot.heic", (40, 24), 3)
    assert near(upright, np.rot90(png, k=-1))
    # The whole-photo path (--faces) reads it the same way, at full size.
    photo = load_photo(tmp_path / "rot.heic")[0]
    assert photo.size == (48, 80)


@pytest.mark.skipif(not features.check_module("avif"), reason="this Pillow has no AVIF")
def test_avif_decodes(tmp_path, gradient):
    gradient.save(tmp_path / "g.png")
    gradient.save(tmp_path / "g.avif", quality=95)
    png = load_image(tmp_path / "g.png", (24, 40), 1)
    assert near(load_image(tmp_path / "g.avif", (24, 40), 1), png)


@pytest.mark.parametrize(
    ("blocked", "used"), [("pillow_heif", "pi_heif"), ("pi_heif", "pillow_heif")]
)
def test_a_heic_under_a_jpeg_name_is_read(tmp_path, gradient, blocked, used):
    # Apps that "export as JPEG" by renaming: a fresh process, where nothing registered a HEIF
    # opener before this file was met; read by pi-heif, or by pillow-heif where that is the
    # one installed.
    gradient.save(tmp_path / "g.png")
    gradient.save(tmp_path / "renamed.jpg", format="HEIF", quality=95)
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from edgefer.preprocess import load_image\n"
        "import numpy as np\n"
        "x = load_image(sys.argv[1], (24, 40), 3)\n"
        f"assert {used!r} in sys.modules\n"
        "np.save(sys.stdout.buffer, x)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "renamed.jpg")], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    (tmp_path / "out.npy").write_bytes(proc.stdout)
    assert near(np.load(tmp_path / "out.npy"), load_image(tmp_path / "g.png", (24, 40), 3))


def test_without_support_the_rows_say_what_to_install(tmp_path, gradient, int8_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    gradient.save(photos / "a.png")
    gradient.save(photos / "b.heic")
    gradient.save(photos / "c.jpg", format="HEIF")  # renamed, not converted
    gradient.save(photos / "d.avif")
    (photos / "e.heic").write_text("not an image at all")
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_SUPPORT, "classify", str(photos)]
        + ["-m", str(int8_model), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-800:]  # some files failed, each with its row
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open())}
    assert rows["a.png"]["label"] and not rows["a.png"]["error"]
    heif = "HEIC/HEIF images need pi-heif: pip install 'edgefer[heif]'"
    assert rows["b.heic"]["error"] == heif and not rows["b.heic"]["label"]
    assert rows["c.jpg"]["error"] == heif
    assert rows["d.avif"]["error"].startswith("AVIF images need a Pillow with AVIF support")
    assert rows["e.heic"]["error"] == "not an image or unsupported format"
    # The summary's failures table (on stdout, as the CSV went to a file), wrapped by Rich;
    # and no warning from Pillow repeating what the row says.
    assert "pip install 'edgefer[heif]'" in " ".join(proc.stdout.split())
    assert "AVIF support not installed" not in proc.stderr


def test_with_support_a_folder_of_heic_is_classified(tmp_path, gradient, int8_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    gradient.save(photos / "a.png")
    gradient.save(photos / "b.HEIC", quality=95)
    out = tmp_path / "out.csv"
    code = (
        "import sys\n"
        "from edgefer.cli import main\n"
        "sys.argv = ['edgefer'] + sys.argv[1:]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('HEIF LOADED', 'pi_heif' in sys.modules)\n"
    )
    args = ["-m", str(int8_model), "-o", str(out)]
    for files, loaded in (([photos / "a.png"], False), ([photos], True)):
        proc = subprocess.run(
            [sys.executable, "-c", code, "classify", *map(str, files), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-800:]
        # pi-heif (~70 ms to import) is imported only when a HEIF file is met.
        assert f"HEIF LOADED {loaded}" in proc.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.HEIC"]
    assert all(r["label"] and not r["error"] for r in rows)


def test_info_says_which_formats_this_install_reads(int8_model):
    def info(code: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code, "info", str(int8_model)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-800:]
        return " ".join(proc.stdout.replace("│", " ").split())  # the table's cells, unwrapped

    bare = info(WITHOUT_SUPPORT)
    assert "HEIC: no, pip install 'edgefer[heif]'; AVIF: no, pip install -U 'pillow>=11.3'" in bare
    # With all the dev extra installs, pi-heif is the plugin used.
    full = info(WITHOUT_SUPPORT.replace("sys.modules[", "# sys.modules["))
    pi_heif = pytest.importorskip("pi_heif")
    assert f"HEIC: pi_heif {pi_heif.__version__}; AVIF: " in full
    assert ("AVIF: Pillow" in full) == features.check_module("avif")


def test_a_plugin_that_does_not_load_is_a_row_not_a_crash(tmp_path, gradient, int8_model):
    # pi-heif built from source (no wheel: 32-bit Pi OS) whose libheif went away.
    fake = tmp_path / "site" / "pi_heif"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('libheif.so.1: cannot open shared object file')\n"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    gradient.save(photos / "a.png")
    gradient.save(photos / "b.heic")
    out = tmp_path / "out.csv"
    code = f"import sys; sys.path.insert(0, {str(fake.parent)!r})\n" + WITHOUT_SUPPORT.replace(
        "sys.modules['pi_heif'] = None\n", ""
    )
    for args in (["classify", str(photos), "-o", str(out)], ["info"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args, "-m", str(int8_model)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in proc.stderr, proc.stderr[-800:]
        said = " ".join(proc.stdout.replace("│", " ").split())
        assert "pi_heif cannot be loaded: libheif.so.1: cannot open shared object file" in said
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open())}
    assert rows["a.png"]["label"]
    assert rows["b.heic"]["error"] == (
        "pi_heif cannot be loaded: libheif.so.1: cannot open shared object file"
    )


def test_a_pillow_that_does_not_know_avif_has_none(monkeypatch):
    # Pillow < 11.2 (Debian trixie's 11.1, kept by a --system-site-packages venv) raises
    # "Unknown module avif": `edgefer info` crashed and AVIF rows carried the ValueError.
    def check_module(name):
        raise ValueError(f"Unknown module {name}")

    monkeypatch.setattr(features, "check_module", check_module)
    avif_available.cache_clear()
    try:
        assert avif_available() is False
    finally:
        avif_available.cache_clear()  # the real answer again for the tests after this one

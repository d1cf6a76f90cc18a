import os

import numpy as np
import pytest
from conftest import gradient_image
from PIL import Image

from edgefer import preprocess
from edgefer.faces import load_photo
from edgefer.preprocess import ImageError, load_image, normalize


def save(im: Image.Image, path, **kwargs):
    im.save(path, **kwargs)
    return path


@pytest.fixture
def gradient():
    return gradient_image(64, 32)


def test_shape_and_dtype(tmp_path, gradient):
    path = save(gradient, tmp_path / "g.png")
    assert load_image(path, (8, 12), 3).shape == (8, 12, 3)
    grey = load_image(path, (8, 12), 1)
    assert grey.shape == (8, 12, 1) and grey.dtype == np.uint8


def test_exif_orientation_is_honoured(tmp_path, gradient):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = save(gradient, tmp_path / "rot.jpg", exif=exif, quality=95)
    upright = load_image(path, (64, 32), 3)  # after transpose the image is 32 wide, 64 tall
    # Rotated clockwise, the stored top row (green=0) becomes the right column.
    assert upright[:, -1, 1].mean() < 40 and upright[:, 0, 1].mean() > 200


def test_png_exif_orientation_is_honoured(tmp_path, gradient):
    # PNGs carry EXIF in an eXIf chunk (phones' screenshots, converted photos): only the JPEG
    # one was checked, and a PNG's chunk is looked for before the transpose is paid for.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(gradient, tmp_path / "rot.png", exif=exif)
    upright = load_image(path, (64, 32), 3)
    assert upright[:, -1, 1].max() == 0 and upright[:, 0, 1].min() == 255


def test_a_non_square_input_gets_its_width_and_height_the_right_way_round(tmp_path, gradient):
    # size is (height, width), Pillow's is (width, height): swapped, a 16x32 model got a 32
    # wide, 16 tall image's pixels reshaped into its rows (a 48x48 model cannot tell).
    path = save(gradient, tmp_path / "g.png")  # 64 wide, 32 tall
    for height, width in ((16, 32), (40, 20)):
        expected = gradient.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
        out = load_image(path, (height, width), 3).astype(int)
        assert np.abs(out - np.asarray(expected)).max() <= 1, (height, width)


@pytest.mark.parametrize("kind", ["JPEG", "MPO"])
def test_large_jpeg_uses_reduced_decoding(tmp_path, monkeypatch, kind):
    # MPO: Pillow opens a JPEG with an MPF block after it (an Android Ultra HDR photo: its gain
    # map after the JPEG) as "MPO", and it was decoded at full size: 0.17 s for a 12 MP photo,
    # 0.016 s without the block.
    big = Image.fromarray(np.full((2000, 3000, 3), 120, np.uint8), "RGB")
    if kind == "MPO":
        path = tmp_path / "phone.jpg"
        big.save(path, format="MPO", save_all=True, append_images=[big.resize((300, 200))])
    else:
        path = save(big, tmp_path / "big.jpg")
    assert Image.open(path).format == kind
    sizes = []
    original = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        sizes.append(self.size)
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    out = load_image(path, (48, 48), 1)
    assert out.shape == (48, 48, 1) and abs(int(out.mean()) - 120) <= 2
    assert sizes and max(sizes[0]) <= 3000 // 8, sizes  # draft decoded at 1/8 scale, not in full


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("L", 200, 200),
        ("P", None, 255),  # palette image with index 0 = white
        ("LA", None, 255),  # fully transparent pixels composite over white
        ("RGBA", None, 255),
        ("CMYK", (0, 0, 0, 0), 255),
        ("1", 1, 255),
        ("I;16", 65535, 255),
        ("I", 40000, 155),  # 16-bit data in a 32-bit image: scaled, not clipped
        ("F", 0.5, 127),
    ],
)
def test_any_mode_converts(tmp_path, mode, value, expected):
    if mode == "P":
        im = Image.new("P", (10, 10), 0)
        im.putpalette([255, 255, 255] + [0, 0, 0] * 255)
    elif mode in ("LA", "RGBA"):
        im = Image.new(mode, (10, 10))  # all zero: black, fully transparent
    else:
        im = Image.new(mode, (10, 10), value)
    suffix = ".tif" if mode in ("CMYK", "I;16", "I", "F") else ".png"
    path = save(im, tmp_path / f"img{suffix}")
    for channels in (1, 3):
        out = load_image(path, (4, 4), channels)
        assert out.shape == (4, 4, channels)
        assert abs(int(out.mean()) - expected) <= 1, (mode, channels, out.mean())


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_a_palette_image_with_a_transparent_colour_goes_over_white(tmp_path, suffix):
    # GIFs and palette PNGs mark one palette entry transparent (tRNS), often black: without
    # the white behind it, the background came out black, unlike the same image as RGBA.
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0] * 256)  # entries 0 and 1 both black; 0 is the transparent one
    im.paste(1, (0, 0, 5, 10))  # the left half opaque
    path = save(im, tmp_path / f"p{suffix}", transparency=0)
    for channels in (1, 3):
        out = load_image(path, (10, 10), channels)
        assert out[:, :5].max() == 0 and out[:, 5:].min() == 255, (channels, out[..., 0])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_resized_first_gives_the_composited_pixels(tmp_path, mode):
    # Transparent images are resized before the white goes behind them (a 60 MP one took
    # 1.3 GB the other way round): the pixels must stay those of compositing first.
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (150, 200, 4), dtype=np.uint8), "RGBA")
    path = save(rgba.convert(mode), tmp_path / "alpha.png")
    with Image.open(path) as stored:
        flat = Image.alpha_composite(
            Image.new("RGBA", stored.size, "white"), stored.convert("RGBA")
        )
    for channels, target in ((1, "L"), (3, "RGB")):
        expected = np.asarray(flat.convert(target).resize((48, 36), Image.Resampling.BILINEAR))
        out = load_image(path, (36, 48), channels).reshape(expected.shape).astype(int)
        assert np.abs(out - expected).max() <= 3 and np.abs(out - expected).mean() < 1


def test_real_16bit_png(tmp_path):
    data = np.full((6, 6), 32896, np.uint16)  # 128 * 257
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    assert abs(int(load_image(path, (6, 6), 1).mean()) - 128) <= 1


def write_truncated(path, source):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, ok: p.write_bytes(b""), "empty file"),
        (lambda p, ok: p.write_text("hello, not a picture"), "not an image"),
        (lambda p, ok: write_truncated(p, ok), "truncated"),
        (lambda p, ok: p.mkdir(), "is a directory"),
        (lambda p, ok: os.symlink(p.parent / "gone.png", p), "broken symlink"),
        (lambda p, ok: None, "no such file"),
    ],
)
def test_bad_inputs_raise_image_error(tmp_path, gradient, make, message):
    ok = save(gradient, tmp_path / "ok.jpg")
    bad = tmp_path / "bad.jpg"
    make(bad, ok)
    with pytest.raises(ImageError, match=message):
        load_image(bad, (8, 8), 1)


@pytest.mark.parametrize("lossless", [False, True])
def test_a_cut_webp_reads_as_truncated(tmp_path, gradient, lossless):
    # Pillow says "could not create decoder object" for any cut WebP: watch took it for a final
    # error, gave a half-uploaded WebP its failure row and moved it to --done-dir.
    whole = tmp_path / "whole.webp"
    gradient.save(whole, lossless=lossless)
    for cut in (40, whole.stat().st_size // 2, whole.stat().st_size - 1):
        (tmp_path / "cut.webp").write_bytes(whole.read_bytes()[:cut])
        with pytest.raises(ImageError, match="^truncated or corrupt image$"):
            load_image(tmp_path / "cut.webp", (8, 8), 1)


def test_unsupported_format(tmp_path):
    path = tmp_path / "x.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    with pytest.raises(ImageError, match="unsupported"):
        load_image(path, (8, 8), 1)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = save(Image.new("L", (4000, 4000)), tmp_path / "bomb.png", optimize=True)
    with pytest.raises(ImageError, match="too large"):
        load_image(path, (8, 8), 1, max_pixels=1_000_000)
    with pytest.raises(ImageError, match="too large: 4000x4000 px"):  # whole photos, --faces
        load_photo(path, max_pixels=1_000_000)


def test_permission_denied(tmp_path, gradient, monkeypatch):
    path = save(gradient, tmp_path / "locked.png")
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads anything: make the open fail the way it does for other users

        def deny(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(preprocess.Image, "open", deny)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path, (8, 8), 1)


def test_normalize_per_channel():
    px = np.array([[[[0, 127, 255]]]], np.uint8)
    out = normalize(px, (0.0, 127.0, 127.5), (1.0, 127.0, 127.5))
    np.testing.assert_allclose(out.ravel(), [0.0, 0.0, 1.0])
    assert out.dtype == np.float32


def test_a_16_bit_image_is_made_8_bit_in_little_memory():
    # Through float32 and its copies (astype, /257, nan_to_num, clip) a 16-bit image took
    # about 14 bytes a pixel at the peak: 775 MB for an 8000x6000 PNG with --faces. Integer
    # division: the same pixels (floor of v / 257), a third of the memory.
    import tracemalloc

    from edgefer.preprocess import _to_8bit_grey

    values = np.arange(2000 * 1000, dtype=np.uint32).reshape(1000, 2000) % 65536
    im = Image.fromarray(values.astype(np.uint16))
    tracemalloc.start()
    try:
        out = np.asarray(_to_8bit_grey(im))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, (values // 257).astype(np.uint8))
    assert peak < 6 * values.size, peak / values.size

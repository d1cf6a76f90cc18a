"""Image decoding and normalisation shared by the device and the trainer.

Every pixel that reaches a model, on the Pi or in training/calibration, goes through
:func:`load_image` and :func:`normalize`, so the two sides cannot drift apart.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: HEIF images (what phones save by default): read through pi-heif's (or pillow-heif's) Pillow
#: plugin, when installed.
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
#: AVIF images: read by Pillow itself when it was built with libavif (its wheels since 11.3).
AVIF_SUFFIXES = frozenset({".avif"})
#: Pillow formats decoded by its JPEG decoder, so reducible with ``draft``: "MPO" is a JPEG
#: with an MPF block after it (an Ultra HDR phone photo's gain map, a camera's second view).
JPEG_FORMATS = frozenset({"JPEG", "MPO"})

#: File suffixes picked up when a directory is scanned (explicitly named files are always tried).
#: HEIF and AVIF files are picked up even where they cannot be decoded: their rows then say
#: what to install, rather than the images being passed over without a word.
IMAGE_SUFFIXES = (
    frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
    | {".ppm", ".pgm", ".pbm"}
    | HEIF_SUFFIXES
    | AVIF_SUFFIXES
)

#: What to install for the formats above, and why an image of them cannot be read, when it cannot.
_INSTALL = {"HEIF": "pip install 'edgefer[heif]'", "AVIF": "pip install -U 'pillow>=11.3'"}
_NEEDS = {
    "HEIF": f"HEIC/HEIF images need pi-heif: {_INSTALL['HEIF']}",
    "AVIF": f"AVIF images need a Pillow with AVIF support: {_INSTALL['AVIF']}",
}
# The brands an ISO base media file names in its ftyp box, for the two formats above.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

#: Default limit on width*height; larger images are refused as decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000


def lift_pillow_limit() -> None:
    """Leave the size check to ``max_pixels`` alone (called by the commands, which own their
    process): Pillow's own limit (``Image.MAX_IMAGE_PIXELS``) refuses images above ~179 MP
    whatever ``--max-pixels`` says. The library does not touch it: it is the host app's
    defence against decompression bombs in its own ``Image.open`` calls; an image over it is
    refused as "too large" here too."""
    Image.MAX_IMAGE_PIXELS = None


def quiet_format_warnings() -> None:
    """Silence Pillow's warning for a file of a format it knows but was built without (AVIF):
    the file's row already says so, and what to install (called by the commands). The library
    leaves the process's warning filters alone: the filter would hide that warning from the
    host app's own ``Image.open`` calls too."""
    warnings.filterwarnings(
        "ignore", message="image file could not be identified because", category=UserWarning
    )


#: The most read from a FIFO or device named as an input (``/dev/zero`` would never end).
MAX_STREAM_BYTES = 256 << 20


class Stream(str):
    """A path named as an input that is a FIFO, pipe or character device (``mkfifo``'s,
    ``<(...)``, ``/dev/stdin``), not a file (see :func:`edgefer.discovery.discover`). It is
    read once, without waiting for a writer that is not there, and kept: ``--annotate`` reads
    the image again."""

    __slots__ = ()


_stream_data: dict[str, bytes] = {}
_stream_lock = threading.Lock()


class ImageError(Exception):
    """An input that cannot be turned into a model input; the message is short, for a CSV cell."""


_HEIF_PLUGINS = ("pi_heif", "pillow_heif")


@functools.cache
def heif_plugin() -> str | None:
    """The module that reads HEIF for Pillow: pi_heif (decode-only, a 1.5 MB wheel with no GPL
    encoder, what the ``heif`` extra installs), else pillow_heif (the same decoder, with
    encoders); None when neither is installed. Looked up, not imported (~70 ms)."""
    return next((m for m in _HEIF_PLUGINS if importlib.util.find_spec(m) is not None), None)


@functools.cache
def avif_available() -> bool:
    """Whether this Pillow decodes AVIF (imports its AVIF module, ~50 ms, once)."""
    from PIL import features

    try:
        return bool(features.check_module("avif"))
    except ValueError:  # Pillow < 11.2 does not know the module's name: no AVIF either
        return False


def optional_formats() -> str:
    """One line for ``edgefer info``: whether this install decodes HEIC and AVIF, and where it
    does not, what to install (or why the installed plugin does not load)."""
    name, why_not = heif_plugin(), _use_heif()
    if why_not is None:
        heif = f"{name} {importlib.import_module(name).__version__}"
    else:
        heif = "no, " + (_INSTALL["HEIF"] if name is None else why_not)
    avif = "Pillow" if avif_available() else "no, " + _INSTALL["AVIF"]
    return f"HEIC: {heif}; AVIF: {avif}"


#: What :func:`_use_heif` found, once it has run: ``[None]`` (registered) or ``[why not]``.
_heif_outcome: list[str | None] = []


def _use_heif() -> str | None:
    """Registers the HEIF plugin's opener with Pillow, once: None when it is, else why not (a
    row's error). A plugin built from source can fail to load its libheif."""
    if not _heif_outcome:
        _heif_outcome.append(_register_heif())
    return _heif_outcome[0]


def _register_heif() -> str | None:
    name = heif_plugin()
    if name is None:
        return _NEEDS["HEIF"]
    try:
        importlib.import_module(name).register_heif_opener()
    except (ImportError, OSError) as exc:
        return f"{name} cannot be loaded: {str(exc)[:160]}"
    return None


def _sniff(path: Path) -> str | None:
    """Which of "HEIF" and "AVIF" the file is by the brands of its ftyp box, whatever its
    name; None for anything else."""
    try:
        with open(path, "rb") as f:
            return _sniff_head(f.read(64))
    except OSError:
        return None


def _sniff_head(head: bytes) -> str | None:
    """:func:`_sniff` on a file's first 64 bytes."""
    if head[4:8] != b"ftyp":
        return None
    # The major brand, then (after a 4-byte version) the compatible ones, to the box's end.
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:  # before HEIF: AVIF files list mif1 too
        return "AVIF"
    return "HEIF" if brands & _HEIF_BRANDS else None


def _open(source: str | os.PathLike, max_pixels: int) -> Image.Image:
    """The image, opened lazily (header only), refused if it has more than ``max_pixels``."""
    # No stat() calls up front: on a folder of small PNGs they cost ~10% of decoding. Failures
    # are told apart after the fact, which only costs time on the bad files.
    try:
        im = _open_stream(source) if isinstance(source, Stream) else _open_file(Path(source))
    except Image.DecompressionBombError as exc:  # Pillow's limit, where the app keeps it
        raise _over_pillows_limit(max_pixels) from exc
    try:
        _check_size(im, max_pixels)
    except ImageError:
        im.close()
        raise
    return im


def _check_size(im: Image.Image, max_pixels: int) -> None:
    """Raises ImageError when ``im`` has more than ``max_pixels`` (before it is decoded)."""
    if im.width * im.height > max_pixels:
        raise ImageError(
            f"too large: {im.width}x{im.height} px exceeds the {max_pixels:,} px limit"
        )


def opened(source: str | os.PathLike | Image.Image, max_pixels: int) -> Image.Image:
    """``source`` opened lazily, or the app's own Pillow image, either refused beyond
    ``max_pixels`` (and an image of no pixels): an app's image may be an ``Image.open`` not
    yet decoded, and the commands turn Pillow's own limit off (:func:`lift_pillow_limit`). A
    camera frame is far below the default limit (a 64 MP sensor's 9152x6944 too)."""
    if isinstance(source, Image.Image):
        _check_size(source, max_pixels)
        if not source.width or not source.height:
            # An app's crop with an empty box (``Image.fromarray(frame[y:y, x:x + w])``) was
            # resized to a black face and given a label. (Pillow opens no such file.)
            raise ImageError(f"empty image: {source.width}x{source.height} px")
        return source
    return _open(source, max_pixels)


def _open_file(path: Path) -> Image.Image:
    if path.suffix.lower() in HEIF_SUFFIXES:
        _use_heif()
    try:
        return _open_any(path)
    except IsADirectoryError as exc:
        raise ImageError("is a directory") from exc
    except FileNotFoundError as exc:
        raise ImageError("broken symlink" if path.is_symlink() else "no such file") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except Image.UnidentifiedImageError as exc:
        empty = path.is_file() and path.stat().st_size == 0
        if empty:
            raise ImageError("empty file") from exc
        raise _unidentified(_sniff(path)) from exc
    except OSError as exc:
        raise ImageError(_describe(exc)) from exc


def _over_pillows_limit(max_pixels: int) -> ImageError:
    """The error for an image Pillow refused at open, as over twice ``MAX_IMAGE_PIXELS``."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if max_pixels <= limit:  # over max_pixels too: that limit is the one to name, as always
        return ImageError(f"too large: over {limit:,} px exceeds the {max_pixels:,} px limit")
    return ImageError(f"too large: over Pillow's limit of {limit:,} px (Image.MAX_IMAGE_PIXELS)")


def _unidentified(kind: str | None) -> ImageError:
    """The error for bytes Pillow cannot open, by what their ftyp box says they are (see
    :func:`_sniff`): what to install for HEIF or AVIF, else not an image."""
    if kind == "HEIF" and (why_not := _use_heif()) is not None:
        return ImageError(why_not)
    if kind == "AVIF" and not avif_available():
        return ImageError(_NEEDS[kind])
    return ImageError("not an image or unsupported format")


def _open_stream(path: Stream) -> Image.Image:
    data = _stream_data.get(path)
    if data is None:
        data = _read_stream(path)
        with _stream_lock:
            _stream_data[path] = data
    try:
        return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        kind = _sniff_head(data[:64])
        if kind == "HEIF" and _use_heif() is None:  # its opener is registered now: again
            with contextlib.suppress(Image.UnidentifiedImageError):
                return Image.open(io.BytesIO(data))
        raise _unidentified(kind) from exc


def _read_stream(path: str) -> bytes:
    """All a FIFO or device gives, to its end. Opened without blocking, so that a FIFO
    nobody writes to reads as empty at once instead of hanging the run (a pipe with a
    writer, ``<(...)`` or ``/dev/stdin``, is then read to its end as usual)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from exc
    chunks: list[bytes] = []
    total = 0
    try:
        os.set_blocking(fd, True)
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_STREAM_BYTES:
                raise ImageError(f"more than {MAX_STREAM_BYTES >> 20} MiB: not an image")
            chunks.append(chunk)
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if not total:
        raise ImageError("empty: a FIFO with no writer" if _is_fifo(path) else "empty file")
    return b"".join(chunks)


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _open_any(path: Path) -> Image.Image:
    """Image.open, again with the HEIF opener when the file is a HEIF image under another
    name (``photo.jpg`` from an app that renames but does not convert)."""
    try:
        return Image.open(path)
    except Image.UnidentifiedImageError:
        # Once _use_heif has run, Pillow has had its chance with the HEIF opener: no retry.
        if _heif_outcome or _sniff(path) != "HEIF" or _use_heif() is not None:
            raise
        return Image.open(path)


def _may_have_exif(im: Image.Image) -> bool:
    """False only when the image certainly has no EXIF orientation (a PNG without an EXIF
    chunk); exif_transpose costs ~20% of decoding a small PNG."""
    return im.format != "PNG" or "exif" in im.info or "Raw profile type exif" in im.info


def _describe(exc: BaseException) -> str:
    """A short, stable reason for a decoding failure, fit for a CSV cell: for a system error
    its text alone ("too many levels of symbolic links"), not Python's with the errno and the
    path, which made each file's failure a reason of its own in the summary."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    message = str(exc) or type(exc).__name__
    # Pillow's words for a cut-short file: JPEG/PNG, and WebP's ("could not create decoder
    # object" for any cut). As one reason, watch knows it for a file perhaps still written.
    cut = ("truncated", "broken data stream", "could not create decoder object")
    if any(x in message.lower() for x in cut):
        return "truncated or corrupt image"
    return message[:120]


def _to_8bit_grey(im: Image.Image) -> Image.Image:
    """Scale high-bit-depth single-channel images to 0..255 (Pillow's convert('L') clips them).

    Integer images are divided in integers (floor of v / 257, as before): through float32 and
    its copies, an 8000x6000 16-bit PNG took 775 MB with ``--faces``."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        return Image.fromarray((arr // 257).astype(np.uint8), "L")
    if im.mode == "I" and arr.size and int(arr.max()) > 255:
        # Pillow opens 16-bit PNGs as "I" in some versions; below 0 is 0, above 65535 is 255.
        arr = np.clip(arr // 257, 0, 255)
    elif im.mode == "F" and arr.size and float(np.nanmax(arr)) <= 1.0:
        arr = arr * 255.0
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def _convert_mode(
    im: Image.Image,
    channels: int,
    size: tuple[int, int] | None = None,
    reducing_gap: float = 3.0,
) -> Image.Image:
    """Any Pillow mode to 'L' (channels=1) or 'RGB' (channels=3); transparency over white.

    ``size`` (width, height): what the caller resizes the result to next. An image with
    transparency is resized to it before the white is put behind it, at a fraction of the
    memory (a 60 MP transparent PNG took three full-size RGBA copies, 1.3 GB): Pillow resizes
    RGBA and LA with premultiplied alpha, so the pixels are those of compositing first.
    """
    target = "L" if channels == 1 else "RGB"
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _to_8bit_grey(im)
    if im.mode == "1":
        im = im.convert("L")  # exact, and a third of the memory of going through RGB
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        if im.mode not in ("RGBA", "LA"):
            im = im.convert("RGBA")
        if size is not None and im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=reducing_gap)
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode == target:
        return im
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # CMYK, YCbCr, P, 1, RGBA...: via RGB, Pillow's own matrices
    return im.convert(target)


def load_image(
    source: str | os.PathLike | Image.Image,
    size: tuple[int, int],
    channels: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an image file into a ``(height, width, channels)`` uint8 array.

    JPEGs are decoded at reduced scale (``Image.draft``) when the target is much smaller, EXIF
    orientation is applied, any mode is converted to grey or RGB, and the result is resized to
    ``size = (height, width)`` with an antialiasing bilinear filter.

    ``source`` may also be a Pillow image already in memory (a camera frame as a numpy array:
    ``Image.fromarray(frame)``), which gets the same treatment, ``max_pixels`` included, and
    is left open and unchanged: a JPEG given so is decoded in full, not at reduced scale, so
    its pixels can differ a little from those of the same file given by its path.

    Raises:
        ImageError: the file is missing, empty, unreadable, not an image, truncated, or larger
            than ``max_pixels`` (a Pillow image given too).
    """
    height, width = size
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    given = isinstance(source, Image.Image)
    # An app's own image is its to close; one opened here is closed here.
    im = opened(source, max_pixels)
    try:
        with contextlib.nullcontext(im) if given else im:
            if im.format in JPEG_FORMATS and not given:
                # Decode at the smallest 1/2^k scale still >= the target in both orientations
                # (EXIF may swap the axes): a 12 MP photo decodes 8x smaller, 10-20x faster.
                side = max(height, width)
                im.draft("L" if channels == 1 else "RGB", (side, side))
            im.load()
            # A corrupt EXIF block must not cost the pixels: keep the stored orientation then.
            if _may_have_exif(im):
                with contextlib.suppress(Exception):
                    im = ImageOps.exif_transpose(im)
            im = _convert_mode(im, channels, (width, height))
            if im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
            arr = np.asarray(im, dtype=np.uint8)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(_describe(exc)) from exc
    return arr.reshape(height, width, channels)


def normalize(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 pixels -> float32 model input, ``(pixels - mean) / std`` per channel."""
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    return (pixels.astype(np.float32) - m) / s

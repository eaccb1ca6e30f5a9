"""Turn anything that names or holds an image into a fully decoded RGB ``PIL.Image``.

Every model in the engine sees images through :func:`load_image`, so this module is where untrusted
input meets the decoders. Its contract: the result is always a loaded RGB image, and anything that
goes wrong — a missing file, a truncated JPEG, a decompression bomb, a URL (never fetched), a
decoder bug triggered by hostile bytes — comes out as a :class:`~assistant.vision.errors.ImageError`
subclass whose message names the source and the reason.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import urllib.parse
from collections.abc import Callable
from typing import TypeAlias, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from assistant.vision import defaults
from assistant.vision.errors import (
    ImageDecodeError,
    ImageError,
    ImageFetchError,
    ImageNotFoundError,
    ImageTooLargeError,
)

ImageInput: TypeAlias = str | os.PathLike | bytes | Image.Image | np.ndarray

__all__ = ["THUMBNAIL_SIDE", "ImageInput", "describe_source", "is_url", "load_image", "thumbnail"]

_URL_RE = re.compile(r"^https?://", re.IGNORECASE)
_WHITE = (255, 255, 255)

# Only raster formats people actually feed a vision model. Restricting Image.open to these keeps
# PIL's exotic plugins (EPS would run Ghostscript, TGA accepts almost any bytes) away from
# untrusted input, and every one of them states its size in a header read before decoding
# (ICO is left out: an icon's embedded PNG can be far larger than its directory says).
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "PPM", "AVIF")
_formats: tuple[str, ...] | None = None

_T = TypeVar("_T")


# The picture kept beside its features, as the model's square resize sees it: small (27 KB), enough to
# check a colour answer against (assistant.vision.tasks.colours).
THUMBNAIL_SIDE = 96


def thumbnail(image: Image.Image) -> np.ndarray:
    """``image`` squeezed to a (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3) uint8 square (about 1 ms for a
    448-pixel capture)."""
    small = image.convert("RGB").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR,
                                        reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def is_url(source: object) -> bool:
    """True when ``source`` is an ``http://`` or ``https://`` URL string."""
    return isinstance(source, str) and bool(_URL_RE.match(source))


def describe_source(source: object) -> str:
    """A short label for ``source`` in output rows and error messages.

    Paths and URLs are shown as given (a URL without any ``user:password@`` part); in-memory
    inputs get a placeholder such as ``"<bytes>"``, ``"<PIL.Image>"`` or ``"<ndarray>"``.
    """
    if isinstance(source, str):
        return _redact_url(source) if is_url(source) else source
    if isinstance(source, os.PathLike):
        try:
            return os.fsdecode(source)
        except (TypeError, ValueError):
            return "<path>"
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<PIL.Image>"
    if isinstance(source, np.ndarray):
        return "<ndarray>"
    return f"<{type(source).__name__}>"


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = defaults.MAX_IMAGE_PIXELS,
    max_bytes: int = defaults.MAX_IMAGE_BYTES,
) -> Image.Image:
    """Load ``source`` as a fully decoded RGB image.

    ``source`` may be a file path, encoded image bytes, a ``PIL.Image`` or a numpy
    array (HxW, HxWx1, HxWx3 or HxWx4; uint8, or float in [0, 1]). EXIF orientation is applied,
    alpha is composited on white, 16/32-bit and float images are scaled to 8 bits, and only the
    first frame of an animation is kept.

    Raises an :class:`~assistant.vision.errors.ImageError` subclass for every failure:
    ``ImageNotFoundError`` (missing path), ``ImageTooLargeError`` (more than ``max_pixels`` pixels,
    checked from the header before any pixel is decoded, or more than ``max_bytes`` bytes),
    ``ImageDecodeError`` (empty, truncated, corrupt or not an image), ``ImageFetchError`` (a URL:
    nothing is fetched from the network) and plain ``ImageError`` for anything else unusable.

    Truncated files are refused because PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left at its
    default, False; the engine never sets it (a program that sets it opts into half-decoded images).
    """
    label = describe_source(source)
    try:
        if isinstance(source, Image.Image):
            return _from_pil(source, label, max_pixels)
        if isinstance(source, np.ndarray):
            return _from_array(source, label, max_pixels)
        if isinstance(source, bytes | bytearray | memoryview):
            size = source.nbytes if isinstance(source, memoryview) else len(source)
            if size > max_bytes:
                raise ImageTooLargeError(f"{label}: {size} bytes is more than the limit of {max_bytes}")
            return _decode(bytes(source), label, max_pixels)
        if is_url(source):
            # The assistant never reaches the network with the user's images or for them.
            raise ImageFetchError(
                f"{label}: images are never fetched from the network; download it and open the file")
        if isinstance(source, str | os.PathLike):
            return _decode(_read_file(source, label, max_bytes), label, max_pixels)
    except ImageError:
        raise
    except MemoryError as e:
        raise ImageTooLargeError(f"{label}: out of memory while loading the image") from e
    except Exception as e:
        # The last line of defence: whatever a decoder throws, callers only ever see ImageError.
        raise ImageDecodeError(f"{label}: cannot load image: {_reason(e)}") from e
    raise ImageError(f"{label}: unsupported image source type {type(source).__name__}")


# --- reading bytes ------------------------------------------------------------------------------


def _read_file(source: str | os.PathLike, label: str, max_bytes: int) -> bytes:
    """Read a regular file, refusing it before reading when it is over ``max_bytes``."""
    if isinstance(source, str) and not source:
        raise ImageNotFoundError("<empty path>: no file name given")
    path = os.path.expanduser(source)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ImageError(f"{label}: not a regular file")
            if st.st_size > max_bytes:
                raise ImageTooLargeError(f"{label}: {st.st_size} bytes is more than the limit of {max_bytes}")
            # Read one byte past the cap so that a file growing after fstat is still caught.
            data = f.read(max_bytes + 1)
    except FileNotFoundError as e:
        raise ImageNotFoundError(f"{label}: no such file") from e
    except IsADirectoryError as e:
        raise ImageError(f"{label}: is a directory, not an image file") from e
    except PermissionError as e:
        raise ImageError(f"{label}: permission denied") from e
    except (OSError, ValueError) as e:
        # ENOTDIR, ENAMETOOLONG, an embedded NUL byte, ...: the path does not name a readable file.
        raise ImageNotFoundError(f"{label}: cannot open: {_reason(e)}") from e
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{label}: more than the limit of {max_bytes} bytes")
    return data


def _allowed_formats() -> tuple[str, ...]:
    global _formats
    if _formats is None:
        Image.init()
        _formats = tuple(f for f in _WANTED_FORMATS if f in Image.OPEN)
    return _formats


def _decode(data: bytes, label: str, max_pixels: int) -> Image.Image:
    """Decode encoded image bytes, checking the pixel count from the header before decoding."""
    if not data:
        raise ImageDecodeError(f"{label}: empty file, no image data")
    # Image.open only parses the header, so the size check below runs before pixels are decoded.
    # PIL's own DecompressionBombError (from its global MAX_IMAGE_PIXELS, never changed here)
    # remains a hard ceiling above any max_pixels a caller passes.
    try:
        im = Image.open(io.BytesIO(data), formats=_allowed_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # The warning is raised, not printed, when a program turns warnings into errors.
        raise ImageTooLargeError(f"{label}: {e}") from e
    except UnidentifiedImageError as e:
        hint = " (the data looks like text)" if _looks_like_text(data) else ""
        raise ImageDecodeError(f"{label}: not a supported image format{hint}") from e
    except MemoryError as e:
        raise ImageTooLargeError(f"{label}: out of memory while reading the image header") from e
    except Exception as e:
        raise ImageDecodeError(f"{label}: cannot read image header: {_reason(e)}") from e
    with im:
        _check_pixels(im.size, label, max_pixels)
        _guarded(im.load, label, "cannot decode image")
        # A plugin may settle its size only while decoding; nothing oversized gets out either way.
        _check_pixels(im.size, label, max_pixels)
        upright = _upright(im, label)
    return _guarded(lambda: _to_rgb(upright), label, "cannot convert image to RGB")


def _guarded(fn: Callable[[], _T], label: str, what: str) -> _T:
    """Run ``fn``, turning whatever it raises into an ImageError."""
    try:
        return fn()
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{label}: {e}") from e
    except MemoryError as e:
        raise ImageTooLargeError(f"{label}: out of memory while decoding the image") from e
    except Exception as e:
        raise ImageDecodeError(f"{label}: {what}: {_reason(e)}") from e


def _upright(image: Image.Image, label: str) -> Image.Image:
    """A new image with the EXIF orientation applied; the input is left untouched."""
    try:
        return ImageOps.exif_transpose(image)
    except MemoryError as e:
        raise ImageTooLargeError(f"{label}: out of memory while rotating the image") from e
    except Exception:
        # Broken EXIF must not cost the user an otherwise good photo: keep it unrotated.
        return _guarded(image.copy, label, "cannot copy image")


def _check_pixels(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label}: {width}x{height} = {width * height} pixels is more than the limit of {max_pixels}"
        )


def _from_pil(image: Image.Image, label: str, max_pixels: int) -> Image.Image:
    """Convert a caller's image; the result never shares pixels with it."""
    _check_pixels(image.size, label, max_pixels)
    _guarded(image.load, label, "cannot decode image")
    upright = _upright(image, label)
    return _guarded(lambda: _to_rgb(upright), label, "cannot convert image to RGB")


def _from_array(array: np.ndarray, label: str, max_pixels: int) -> Image.Image:
    """Convert an HxW / HxWx{1,3,4} array of uint8 or float in [0, 1]."""
    shape = array.shape
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageError(f"{label}: unsupported array shape {shape}; expected HxW, HxWx1, HxWx3 or HxWx4")
    _check_pixels((array.shape[1], array.shape[0]), label, max_pixels)
    if array.dtype == np.uint8:
        pixels = np.ascontiguousarray(array)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"{label}: float array contains NaN or infinity")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(f"{label}: float array values must lie in [0, 1], found [{low:g}, {high:g}]")
        pixels = (array.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError(f"{label}: unsupported array dtype {array.dtype}; expected uint8 or float in [0, 1]")
    # fromarray picks L, RGB or RGBA from the shape of a uint8 array.
    return _to_rgb(Image.fromarray(pixels))


# --- colour modes -------------------------------------------------------------------------------


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha on white, high bit depths scaled, not clipped, to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16"):
        return _scale_16bit(image).convert("RGB")
    if mode in ("I", "F"):
        return _scale_wide(image).convert("RGB")
    if mode == "La":
        # PIL converts La (premultiplied) only to LA; LA then composites like any alpha mode.
        image = image.convert("LA")
        mode = "LA"
    if mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _scale_16bit(image: Image.Image) -> Image.Image:
    # A 16-bit channel uses its whole range, so the top byte is the faithful 8-bit value;
    # PIL's own convert("L") would clip everything above 255 to white.
    pixels = np.asarray(image).astype(np.uint16, copy=False)
    return Image.fromarray((pixels >> 8).astype(np.uint8))


def _scale_wide(image: Image.Image) -> Image.Image:
    """Scale a 32-bit integer or float image to 8 bits by the range its values actually use.

    Values that already fit 8 bits (or [0, 1] for floats) keep their meaning; values that fit 16
    bits are taken as 16-bit data; anything else is stretched from its minimum to its maximum.
    """
    low, high = image.getextrema()
    if not (math.isfinite(low) and math.isfinite(high)):
        image = _finite_floats(image)
        low, high = image.getextrema()
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 255.0, 0.0
    elif low >= 0.0 and high <= 255.0:
        scale, offset = 1.0, 0.0
    elif low >= 0.0 and high <= 65535.0:
        scale, offset = 1.0 / 257.0, 0.0
    elif high > low:
        scale = 255.0 / (high - low)
        offset = -low * scale
    else:
        scale, offset = 0.0, 0.0
    # point() with a linear function runs in C on I and F images: no float64 copies of a big
    # image. The +0.5 rounds, since the conversion to L truncates (and clips to 0..255).
    return image.point(lambda v: v * scale + offset + 0.5).convert("L")


def _finite_floats(image: Image.Image) -> Image.Image:
    """A float image with NaN as 0 and infinities as the largest/smallest finite value."""
    pixels = np.array(image, dtype=np.float32)
    finite = pixels[np.isfinite(pixels)]
    top, bottom = (float(finite.max()), float(finite.min())) if finite.size else (0.0, 0.0)
    np.nan_to_num(pixels, copy=False, nan=0.0, posinf=top, neginf=bottom)
    return Image.fromarray(pixels)


# --- helpers ------------------------------------------------------------------------------------


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{text} ({name})" if text else name


def _looks_like_text(data: bytes) -> bool:
    # An HTML error page or a text file renamed .jpg is the commonest "image" that is not one.
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _redact_url(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))

"""Raw BGRA screen bytes -> an RGB PIL image no larger than the model needs.

A 12000 x 3000 virtual desktop is 144 MB of BGRA; converting it to a full-size RGB image first would hold
another 108 MB. Instead the raw buffer is converted a band of rows at a time, each band box-reduced by an
integer factor at once, so the only full-size copy ever held is the buffer mss returned.
"""

from __future__ import annotations

import math

from PIL import Image

DEFAULT_MAX_SIDE = 1600
# Raw bytes per band: small against any screen, large enough that the per-band overhead is noise.
_BAND_BYTES = 8 << 20


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``max_side``, keeping the aspect ratio."""
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, not {max_side}")
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    return max(1, round(width * max_side / longest)), max(1, round(height * max_side / longest))


def image_from_bgra(raw: bytes | bytearray | memoryview, width: int, height: int,
                    max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """An RGB image of the BGRA/BGRX pixels in ``raw``, downscaled so its longer side is <= max_side.

    Rows may be padded (macOS pads them): the stride is taken from the buffer's length.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"empty image {width}x{height}")
    stride = len(raw) // height
    if stride < width * 4:
        raise ValueError(f"{len(raw)} bytes is too short for a {width}x{height} BGRA image")
    target = target_size(width, height, max_side)
    if target == (width, height):
        return Image.frombuffer("RGB", (width, height), raw, "raw", "BGRX", stride, 1)

    # Reduce by the largest integer factor that stays at or above the target (a box filter over whole
    # pixels, cheap and alias-free), then one bilinear resample (antialiased: PIL widens its support when
    # shrinking) covers the remaining fraction, less than 2. Lanczos took 30 ms of a key press's capture
    # for a 1280x800 screen, bilinear 12 (tests/benchmarks/README.md), and the model shrinks the
    # picture again to 224 or 384 pixels with its own bicubic filter.
    factor = max(1, min(width // target[0], height // target[1]))
    band_rows = max(factor, (_BAND_BYTES // stride) // factor * factor)
    reduced = Image.new("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
    with memoryview(raw) as view:
        for top in range(0, height, band_rows):
            rows = min(band_rows, height - top)
            band = Image.frombuffer("RGB", (width, rows), view[top * stride:(top + rows) * stride],
                                    "raw", "BGRX", stride, 1)
            reduced.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
            del band
    if reduced.size == target:
        return reduced
    return reduced.resize(target, Image.Resampling.BILINEAR)


def fit(image: Image.Image, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """An RGB copy of any PIL image (an opened file, the clipboard) with its longer side <= max_side."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    target = target_size(image.width, image.height, max_side)
    if target == image.size:
        return image
    # reducing_gap: reduce() by an integer factor first, as image_from_bgra does, then resample.
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)

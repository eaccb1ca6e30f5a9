"""Is there anything to describe? Checked before any model sees the capture.

A screen curtain, a locked or sleeping screen, and DRM-protected video all capture as one flat colour, and a
captioning model asked about a black rectangle still answers with a confident sentence. This module
says so in words instead.

Thresholds (``Thresholds``):
- "one colour": every channel spans at most ``flat_spread`` levels over the whole image (screen noise,
  dithering of a lock-screen gradient would exceed it, so a real picture is never "one colour").
- "almost one colour": at least ``almost_fraction`` of the pixels lie within ``tolerance`` levels of the
  dominant colour. 99.95 % (500 pixels of a 1280 x 800 capture) leaves room for a caret, a small clock or
  a pointer on a black curtain, yet a single line of small text on a white screen (about 0.08 % ink) is
  not flagged; a page of text keeps several per cent of its pixels in ink, and a dark photo's noise and
  shading spread it far wider than the tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Reference colours for naming a flat capture. Nearest by plain RGB distance: good enough to tell the user
# "white" from "dark blue", not a colour-science claim.
_NAMED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (0, 0, 0)),
    ("white", (255, 255, 255)),
    ("dark grey", (70, 70, 70)),
    ("grey", (128, 128, 128)),
    ("light grey", (200, 200, 200)),
    ("red", (210, 30, 30)),
    ("dark red", (120, 10, 10)),
    ("orange", (245, 140, 20)),
    ("yellow", (240, 220, 40)),
    ("brown", (120, 70, 30)),
    ("green", (40, 170, 40)),
    ("dark green", (10, 90, 20)),
    ("teal", (0, 128, 128)),
    ("cyan", (40, 210, 220)),
    ("light blue", (150, 190, 240)),
    ("blue", (30, 70, 210)),
    ("dark blue", (10, 20, 110)),
    ("purple", (120, 40, 160)),
    ("magenta", (220, 40, 200)),
    ("pink", (245, 160, 200)),
)

_SAMPLE_PIXELS = 120_000
_BLACK_HINT = "a screen curtain, a locked or sleeping screen, or protected video looks like this"


@dataclass(frozen=True)
class Thresholds:
    flat_spread: int = 6
    tolerance: int = 12
    almost_fraction: float = 0.9995


DEFAULT_THRESHOLDS = Thresholds()


def colour_name(rgb: tuple[int, int, int] | np.ndarray) -> str:
    r, g, b = (int(c) for c in rgb)
    return min(_NAMED_COLOURS,
               key=lambda item: (item[1][0] - r) ** 2 + (item[1][1] - g) ** 2 + (item[1][2] - b) ** 2)[0]


def blank_reason(image: Image.Image, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 subject: str = "The captured area") -> str | None:
    """Why ``image`` has nothing to describe, as a sentence about ``subject`` ("The image" for an opened
    file); None when it has content."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    extrema = image.getextrema()  # C-speed min/max per channel; most real captures stop here
    if max(hi - lo for lo, hi in extrema) <= thresholds.flat_spread:
        colour = colour_name(tuple((lo + hi) // 2 for lo, hi in extrema))
        if colour == "black":
            return f"{subject} is completely black; {_BLACK_HINT}."
        return f"{subject} is a single colour ({colour})."

    pixels = _sample(np.asarray(image))
    dominant = _dominant(pixels, thresholds.tolerance)
    near = np.abs(pixels.astype(np.int16) - dominant).max(axis=1) <= thresholds.tolerance
    if near.mean() >= thresholds.almost_fraction:
        colour = colour_name(dominant)
        if colour == "black":
            return f"{subject} is almost entirely black; {_BLACK_HINT}."
        return f"{subject} is almost entirely one colour ({colour})."
    return None


def _sample(array: np.ndarray) -> np.ndarray:
    """Every n-th pixel of every n-th row, about _SAMPLE_PIXELS in all, as an (N, 3) array.

    A regular grid, not an average: a fraction of ink pixels is estimated without bias and nothing is
    blurred into the background, at a tenth of the cost of the full image on a 1280 x 800 capture.
    """
    step = max(1, math.ceil(math.sqrt(array.shape[0] * array.shape[1] / _SAMPLE_PIXELS)))
    return array[::step, ::step].reshape(-1, 3)


def _dominant(pixels: np.ndarray, tolerance: int) -> np.ndarray:
    """The most common colour: the fullest cell of a 5-bit-per-channel histogram, refined to the median of
    the pixels within ``tolerance`` of that cell (a noisy flat colour straddles several cells)."""
    q = (pixels >> 3).astype(np.int32)
    keys = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    top = int(np.bincount(keys, minlength=1 << 15).argmax())
    centre = np.array([(top >> 10) & 31, (top >> 5) & 31, top & 31], np.int16) * 8 + 4
    members = pixels[np.abs(pixels.astype(np.int16) - centre).max(axis=1) <= tolerance]
    return np.median(members, axis=0).astype(np.int16)

"""Rectangles on the virtual screen, in physical pixels (what mss grabs).

Pure arithmetic, no display needed, so the choices "which monitor is under the pointer" and "which square
around the pointer" are tested without a screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rect:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def contains(self, x: int, y: int) -> bool:
        return self.left <= x < self.right and self.top <= y < self.bottom

    def intersect(self, other: Rect) -> Rect:
        """The overlap; an empty Rect (width or height 0) when there is none."""
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(left, top, max(0, right - left), max(0, bottom - top))

    def scaled(self, scale: float) -> Rect:
        """Logical pixels -> physical pixels (scale 2.0 on a 200 % display).

        The far edges are rounded, not the size, so adjacent logical rectangles stay adjacent.
        """
        if scale <= 0:
            raise ValueError(f"the scale factor must be positive, not {scale}")
        left, top = round(self.left * scale), round(self.top * scale)
        return Rect(left, top, round(self.right * scale) - left, round(self.bottom * scale) - top)

    def as_mss(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}

    @classmethod
    def from_mss(cls, monitor: Mapping[str, Any]) -> Rect:
        return cls(int(monitor["left"]), int(monitor["top"]), int(monitor["width"]), int(monitor["height"]))

    @classmethod
    def coerce(cls, value: Rect | tuple[int, int, int, int]) -> Rect:
        """A Rect, or (left, top, width, height)."""
        if isinstance(value, Rect):
            return value
        left, top, width, height = value
        return cls(int(left), int(top), int(width), int(height))

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.left}, {self.top})"


def monitor_at(x: int, y: int, monitors: Iterable[Rect]) -> Rect:
    """The monitor under (x, y).

    When monitors overlap (mirrored outputs, or a RandR monitor defined over part of an output) the
    smallest one that contains the point wins, the closest match to what the user sees. A point in a gap
    between monitors (the pointer on a dead corner of an L-shaped layout) goes to the nearest monitor.
    """
    monitors = [m for m in monitors if not m.empty]
    if not monitors:
        raise ValueError("no monitors")
    containing = [m for m in monitors if m.contains(x, y)]
    if containing:
        return min(containing, key=lambda m: m.area)

    def distance(m: Rect) -> int:
        dx = max(m.left - x, 0, x - (m.right - 1))
        dy = max(m.top - y, 0, y - (m.bottom - 1))
        return dx * dx + dy * dy

    return min(monitors, key=distance)


def square_around(x: int, y: int, size: int, bounds: Rect) -> Rect:
    """A size x size square centred on (x, y), moved (not cut) to stay inside ``bounds``.

    Moving rather than cutting keeps the area the same size near a screen edge; only a square larger than
    the monitor itself is cut down to it.
    """
    if size <= 0:
        raise ValueError(f"the pointer area must be at least 1 pixel, not {size}")
    width, height = min(size, bounds.width), min(size, bounds.height)
    left = min(max(x - width // 2, bounds.left), bounds.right - width)
    top = min(max(y - height // 2, bounds.top), bounds.bottom - height)
    return Rect(left, top, width, height)

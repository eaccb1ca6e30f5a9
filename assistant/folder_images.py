"""Going through the images of a folder, one by one, in the order a file manager shows them. Qt-free.

Which files count as images is what the engine opens (its list of Pillow formats: JPEG, PNG, GIF, WebP,
TIFF, BMP, PPM, AVIF), with every extension Pillow registers for them; the order is natural ("photo 2"
before "photo 10"), case-insensitive.
"""

from __future__ import annotations

import re
from pathlib import Path


def image_extensions() -> frozenset[str]:
    from PIL import Image

    # the engine's own list, so that a file the walk offers is one it opens (it leaves out on purpose
    # formats that are risky on untrusted files: EPS runs Ghostscript, TGA takes almost any bytes)
    from assistant.vision.io.images import _allowed_formats

    allowed = set(_allowed_formats())
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in allowed)


def _natural(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name.casefold()))


def folder_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not its sub-folders, no hidden files), in natural order."""
    extensions = image_extensions()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted((p for p in entries if p.suffix.lower() in extensions and not p.name.startswith(".")
                   and p.is_file()), key=_natural)


def neighbour(current: Path, step: int) -> tuple[Path | None, int, int]:
    """The image ``step`` places from ``current`` in its folder (no wrapping round), its 1-based position
    and how many images the folder has. ``None`` when there is none that way."""
    images = folder_images(current.parent)
    if not images:
        return None, 0, 0
    try:
        index = images.index(current)
    except ValueError:  # deleted or renamed since: go on from where it would have been
        index = sum(1 for p in images if _natural(p) < _natural(current)) - (1 if step > 0 else 0)
    target = index + step
    if not 0 <= target < len(images):
        return None, index + 1, len(images)
    return images[target], target + 1, len(images)

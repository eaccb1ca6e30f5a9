"""Qt images to PIL images, in memory: clipboard and drag-and-drop images never touch the disk."""

from __future__ import annotations

from typing import Any

from PIL import Image
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

# The encoded formats taken from a clipboard or a drop, best first: the engine decodes these bytes itself
# (with its size checks and its specific reasons), where Qt would only give a null image for a bad one.
PREFERRED = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff", "image/avif")


def pil_from_qimage(image: QImage) -> Image.Image | None:
    if image is None or image.isNull():
        return None
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    data = bytes(rgb.constBits())  # one copy: the QImage's buffer is not ours to keep
    return Image.frombuffer("RGB", (width, height), data, "raw", "RGB", stride, 1).copy()


def has_image(mime: QMimeData | None) -> bool:
    return mime is not None and (mime.hasImage() or any(f.startswith("image/") for f in mime.formats()))


def image_from_mime(mime: QMimeData | None) -> Any:
    """The image a clipboard or a drop holds: its encoded bytes (the engine decodes them, so a damaged one
    gets a specific reason), else Qt's decoded image as a PIL image; None when it holds no image at all."""
    if mime is None:
        return None
    formats = [f for f in mime.formats() if f.startswith("image/")]
    formats.sort(key=lambda f: PREFERRED.index(f) if f in PREFERRED else len(PREFERRED))
    for fmt in formats:
        if fmt in PREFERRED or not mime.hasImage():
            return bytes(mime.data(fmt).data())
    return pil_from_qimage(mime.imageData()) if mime.hasImage() else None

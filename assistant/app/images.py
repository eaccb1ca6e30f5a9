"""Qt images to PIL images, in memory: clipboard and drag-and-drop images never touch the disk."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage


def pil_from_qimage(image: QImage) -> Image.Image:
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    data = bytes(rgb.constBits())  # one copy: the QImage's buffer is not ours to keep
    return Image.frombuffer("RGB", (width, height), data, "raw", "RGB", stride, 1).copy()

"""Known text drawn the way a screen draws it (DejaVu Sans, dark grey on white, no blur), for the OCR
tests and the OCR benchmark: what was drawn is what a perfect reader returns."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

# Interface and document text: digits, punctuation, capitals, a file path, a price, a date.
PARAGRAPHS: list[list[str]] = [
    ["Settings: Display, Sound & Network (Wi-Fi)"],
    ["Your order #48213 was shipped on 2026-12-06 and should",
     "arrive within 3 working days. Total: $1,249.50 incl. VAT."],
    ["Press Ctrl+S to save the file to /home/anna/Documents/report.txt,",
     "or Esc to close this window without saving."],
    ["The quick brown fox jumps over the lazy dog; 12 boxes, 7 jugs."],
]


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


def render(paragraphs: list[list[str]], size: int, width: int | None = None,
           margin: int = 16) -> Image.Image:
    """The paragraphs at ``size`` px, 1.45 line spacing, a blank line between paragraphs."""
    face = font(size)
    step = round(size * 1.45)
    rows = sum(len(p) for p in paragraphs) + len(paragraphs) - 1
    text_width = max(int(face.getlength(line)) for p in paragraphs for line in p)
    image = Image.new("RGB", (width or text_width + 2 * margin, rows * step + 2 * margin), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    y = margin
    for paragraph in paragraphs:
        for line in paragraph:
            draw.text((margin, y), line, font=face, fill=(33, 33, 33))
            y += step
        y += step
    return image


def character_accuracy(expected: str, got: str) -> float:
    """1 - (Levenshtein distance / expected length), over text with whitespace runs made one space."""
    a, b = " ".join(expected.split()), " ".join(got.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return max(0.0, 1 - previous[-1] / max(1, len(a)))

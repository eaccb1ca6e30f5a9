"""Screens drawn with Pillow for the hallucination benchmark: a document, a menu, a web page, a dialog, a
terminal and a spreadsheet, the kinds of screen the assistant is asked to describe. Deterministic, no font
files beyond Pillow's own."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

W, H = 640, 480
WORDS = [
    "the",
    "quick",
    "results",
    "show",
    "that",
    "each",
    "value",
    "of",
    "the",
    "report",
    "was",
    "measured",
    "twice",
    "and",
    "then",
    "compared",
    "with",
    "the",
    "reference",
    "figures",
    "listed",
    "in",
    "the",
    "second",
    "table",
    "below",
    "before",
    "any",
    "change",
    "was",
    "made",
]


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _lines(
    draw: ImageDraw.ImageDraw, x: int, y: int, n: int, width: int, size: int, fill: str, step: int = 0
) -> None:
    for i in range(n):
        words = WORDS[(i * 5) % len(WORDS) :] + WORDS
        line = " ".join(words)[:width]
        draw.text((x, y + i * (step or size + 8)), line, fill=fill, font=_font(size))


def document() -> Image.Image:
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.text((40, 30), "Quarterly Report", fill="black", font=_font(28))
    _lines(d, 40, 90, 6, 60, 16, "black")
    _lines(d, 40, 260, 7, 60, 16, "black")
    return im


def menu() -> Image.Image:
    im = Image.new("RGB", (W, H), (225, 225, 225))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, W, 30), fill=(245, 245, 245))
    for i, name in enumerate(["File", "Edit", "View", "Insert", "Help"]):
        d.text((12 + i * 70, 6), name, fill="black", font=_font(16))
    d.rectangle((80, 30, 300, 330), fill="white", outline=(150, 150, 150))
    for i, item in enumerate(["Undo", "Redo", "Cut", "Copy", "Paste", "Select All", "Find", "Replace"]):
        if i == 3:
            d.rectangle((81, 36 + i * 36, 299, 66 + i * 36), fill=(50, 110, 220))
        d.text((96, 40 + i * 36), item, fill="white" if i == 3 else "black", font=_font(18))
    return im


def web_page() -> Image.Image:
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, W, 70), fill=(30, 80, 170))
    d.text((24, 18), "City Library", fill="white", font=_font(30))
    for i, link in enumerate(["Home", "Catalogue", "Events", "Contact"]):
        d.text((24 + i * 120, 85), link, fill=(20, 60, 200), font=_font(16))
    d.text((24, 130), "Opening hours this week", fill="black", font=_font(22))
    _lines(d, 24, 170, 8, 70, 14, (40, 40, 40))
    for i, label in enumerate(["Sign in", "Search"]):
        d.rounded_rectangle((24 + i * 140, 400, 144 + i * 140, 440), 8, fill=(30, 80, 170))
        d.text((44 + i * 140, 410), label, fill="white", font=_font(16))
    return im


def dialog() -> Image.Image:
    im = Image.new("RGB", (W, H), (70, 110, 150))
    d = ImageDraw.Draw(im)
    d.rectangle((120, 140, 520, 340), fill=(240, 240, 240), outline="black")
    d.rectangle((120, 140, 520, 170), fill=(200, 200, 200))
    d.text((130, 146), "Save changes?", fill="black", font=_font(16))
    d.text((140, 200), "Do you want to save the changes", fill="black", font=_font(16))
    d.text((140, 222), "to this document before closing?", fill="black", font=_font(16))
    for i, label in enumerate(["OK", "Cancel"]):
        d.rectangle((300 + i * 110, 290, 390 + i * 110, 322), fill="white", outline="black")
        d.text((325 + i * 110, 297), label, fill="black", font=_font(16))
    return im


def terminal() -> Image.Image:
    im = Image.new("RGB", (W, H), (15, 15, 15))
    d = ImageDraw.Draw(im)
    rows = [
        "$ ls -l",
        "total 24",
        "-rw-r--r-- 1 user user  812 notes.txt",
        "drwxr-xr-x 2 user user 4096 photos",
        "$ python3 report.py",
        "reading 12 files",
        "done in 0.4 s",
        "$ git status",
        "nothing to commit",
        "$ _",
    ]
    for i, row in enumerate(rows):
        d.text((16, 16 + i * 26), row, fill=(220, 220, 220), font=_font(18))
    return im


def spreadsheet() -> Image.Image:
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    for r in range(14):
        for c in range(6):
            x, y = 20 + c * 100, 20 + r * 32
            d.rectangle(
                (x, y, x + 100, y + 32), outline=(180, 180, 180), fill=(230, 230, 230) if r == 0 else None
            )
            text = "ABCDEF"[c] if r == 0 else str((r * 37 + c * 11) % 900 + 10)
            d.text((x + 8, y + 8), text, fill="black", font=_font(14))
    return im


SCREENS = {
    "document": document,
    "menu": menu,
    "web_page": web_page,
    "dialog": dialog,
    "terminal": terminal,
    "spreadsheet": spreadsheet,
}


def write_screens(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, draw in SCREENS.items():
        path = folder / f"{name}.png"
        draw().save(path)
        out[name] = path
    return out

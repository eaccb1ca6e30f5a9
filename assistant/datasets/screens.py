"""Synthetic screens for training the captioner to say what kind of screen it sees (issue #26 point 4).

Seven kinds (document, web page, chart, chat, dialog, code editor, slide), each drawn with Pillow from a
seeded random layout, palette and text, and captioned from what was drawn: "a web page with a photo of two
dogs running on grass" (the photo's own Flickr8k caption), "a bar chart titled sales by month", "a dialog
box with the buttons ok and cancel". The layouts and the words here are this module's own: the benchmark
(tests/benchmarks/screen_kinds.py) draws its screens with other code and another word list, so what it
measures is a kind of screen training never saw drawn that way.

Torch-free. ``write_screen_set`` writes PNGs and a Karpathy-style ``captions.json`` that
:func:`assistant.datasets.load_caption_dataset` reads, so a recipe trains on them like any caption set.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

KINDS = ("document", "web page", "chart", "chat", "dialog", "code editor", "slide")
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FORMAT_VERSION = 1  # raise when the drawing changes, so that a cached set is drawn again
# Not the benchmark's word list: training text and test text share no vocabulary on purpose.
VOCABULARY = (
    "river", "garden", "market", "winter", "summer", "report", "budget", "travel", "recipe", "weather",
    "health", "music", "museum", "village", "library", "station", "harbour", "planet", "forest",
    "coffee", "bread", "history", "science", "review", "update", "meeting", "project", "teacher",
    "season", "island", "mountain", "bridge", "window", "letter", "minute", "evening", "journey",
    "festival", "kitchen", "energy", "ocean", "train", "airport", "hotel", "ticket", "camera",
    "picture", "office", "holiday", "dinner", "orange", "silver", "yellow",
)
SIZES = ((800, 600), (1024, 768), (1280, 720), (1366, 768), (1440, 900), (900, 700))


@dataclass(frozen=True)
class Photo:
    """A photo to put inside a web page or slide, with one of its human captions."""

    path: str
    caption: str


@functools.lru_cache(maxsize=256)
def _font(size: int, bold: bool = False, mono: bool = False) -> ImageFont.ImageFont:
    name = "DejaVuSansMono.ttf" if mono else ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(str(FONTS / name), size)
    except OSError:  # no DejaVu on this system: Pillow's own font, at the size asked
        return ImageFont.load_default(size)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))


def _colour(rng: random.Random, low: int = 0, high: int = 255) -> tuple[int, int, int]:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def _text_lines(draw: ImageDraw.ImageDraw, rng: random.Random, box: tuple[int, int, int, int], size: int,
                fill: object, gap: float = 1.45) -> None:
    x0, y0, x1, y1 = box
    face = _font(size)
    y = y0
    while y + size < y1:
        if rng.random() < 0.15:  # a paragraph break
            y += int(size * gap)
            continue
        line = _words(rng, 16).capitalize()
        width = rng.uniform(0.55, 1.0) * (x1 - x0)
        while face.getlength(line) > width and " " in line:
            line = line.rsplit(" ", 1)[0]
        draw.text((x0, y), line, font=face, fill=fill)
        y += int(size * gap)


def _title_bar(draw: ImageDraw.ImageDraw, rng: random.Random, w: int, title: str) -> int:
    """A window title bar on some screens: the desktop's frame, not the kind of screen."""
    if rng.random() < 0.5:
        return 0
    h = rng.randint(24, 32)
    draw.rectangle((0, 0, w, h), fill=_colour(rng, 40, 90) if rng.random() < 0.5 else (225, 225, 225))
    draw.text((12, h // 2 - 7), title, font=_font(13), fill=(128, 128, 128))
    for i in range(3):
        draw.ellipse((w - 24 - i * 22, h // 2 - 6, w - 12 - i * 22, h // 2 + 6), fill=(150, 150, 150))
    return h


def _photo_image(photo: Photo | None, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    if photo is None:
        return Image.effect_noise(size, rng.randint(40, 90)).convert("RGB")
    return Image.open(photo.path).convert("RGB").resize(size)


def _photo_phrase(photo: Photo | None) -> str:
    if photo is None:
        return "a photo"
    text = photo.caption.strip().rstrip(" .").lower()
    for article in ("a ", "an ", "the "):
        if text.startswith(article):
            return "a photo of " + text
    return "a photo of " + text


def document(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    del photo
    paper = rng.randint(230, 255)
    background = rng.choice(((paper,) * 3, (120, 120, 125), (200, 200, 205)))
    im = Image.new("RGB", (w, h), background)
    d = ImageDraw.Draw(im)
    top = _title_bar(d, rng, w, f"{_words(rng, 2)}.pdf")
    page_w = rng.randint(int(w * 0.5), int(w * 0.95))
    px = (w - page_w) // 2
    d.rectangle((px, top + 10, px + page_w, h), fill=(paper, paper, paper - rng.randint(0, 12)))
    margin = rng.randint(24, 70)
    title = _words(rng, rng.randint(2, 4))
    y = top + 10 + margin
    if rng.random() < 0.8:
        d.text((px + margin, y), title.title(), font=_font(rng.randint(18, 30), bold=True), fill=(10, 10, 10))
        y += 50
    columns = 2 if page_w > 800 and rng.random() < 0.4 else 1
    col_w = (page_w - 2 * margin - (columns - 1) * 30) // columns
    for c in range(columns):
        x = px + margin + c * (col_w + 30)
        _text_lines(d, rng, (x, y, x + col_w, h - margin), rng.randint(10, 16), (30, 30, 30))
    caption = rng.choice(("a document with a page of text", "a page of text in a document",
                          f"a text document titled {title}", "a document page with paragraphs of text",
                          "a letter with several paragraphs of text"))
    if columns == 2:
        caption = "a document with two columns of text"
    return im, caption


def web_page(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    im = Image.new("RGB", (w, h), rng.choice(("white", (248, 248, 250), (240, 244, 248))))
    d = ImageDraw.Draw(im)
    chrome = rng.randint(36, 60)
    d.rectangle((0, 0, w, chrome), fill=_colour(rng, 200, 240))
    d.rounded_rectangle((rng.randint(60, 140), 8, w - rng.randint(40, 200), chrome - 8), 8, fill="white")
    site = f"{rng.choice(VOCABULARY)}{rng.choice(('news', 'shop', 'blog', 'daily'))}.org"
    url = f"https://{site}/{rng.choice(VOCABULARY)}"
    d.text((150, chrome // 2 - 7), url, font=_font(12), fill=(60, 60, 60))
    nav = rng.randint(40, 70)
    d.rectangle((0, chrome, w, chrome + nav), fill=_colour(rng, 0, 180))
    x = 20
    for _ in range(rng.randint(3, 6)):
        word = rng.choice(VOCABULARY).title()
        d.text((x, chrome + nav // 2 - 8), word, font=_font(15, bold=True), fill="white")
        x += int(_font(15).getlength(word)) + 30
    top = chrome + nav + 20
    pw = rng.randint(w // 4, w // 2)
    ph = int(pw * rng.uniform(0.6, 0.8))
    layout = rng.choice(("left", "right", "top"))
    if layout == "top":
        px = (w - pw) // 2
        im.paste(_photo_image(photo, rng, (pw, ph)), (px, top))
        _text_lines(d, rng, (40, top + ph + 20, w - 40, h - 20), rng.randint(12, 15), (40, 40, 40))
    else:
        px = 30 if layout == "left" else w - pw - 30
        im.paste(_photo_image(photo, rng, (pw, ph)), (px, top))
        tx = px + pw + 30 if layout == "left" else 30
        d.text((tx, top), _words(rng, 3).title(), font=_font(22, bold=True), fill=(20, 20, 20))
        _text_lines(d, rng, (tx, top + 40, tx + w - pw - 90, h - 20), rng.randint(12, 15), (40, 40, 40))
    if rng.random() < 0.5:  # a sidebar of links
        d.rectangle((w - 200, top, w - 20, h - 20), outline=(200, 200, 200))
    what = _photo_phrase(photo)
    caption = rng.choice((f"a web page with {what}", f"a website with {what}", f"a web page showing {what}",
                          f"a news web page with {what} and text"))
    return im, caption


def chart(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    del photo
    dark = rng.random() < 0.2
    im = Image.new("RGB", (w, h), (30, 32, 40) if dark else _colour(rng, 240, 255))
    d = ImageDraw.Draw(im)
    ink = (220, 220, 220) if dark else (30, 30, 30)
    top = _title_bar(d, rng, w, f"{_words(rng, 1)}.xlsx")
    title = _words(rng, rng.randint(2, 3))
    d.text((w // 2 - 120, top + 16), title.title(), font=_font(rng.randint(18, 26), bold=True), fill=ink)
    x0, y0 = rng.randint(60, 120), top + 80
    x1, y1 = w - rng.randint(30, 80), h - rng.randint(50, 80)
    style = rng.choice(("bar", "bar", "line", "pie", "horizontal"))
    n = rng.randint(3, 12)
    values = [rng.uniform(0.1, 1.0) for _ in range(n)]
    colours = [_colour(rng, 20, 220) for _ in range(n)]
    one = colours[0]
    if style == "pie":
        cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, min(x1 - x0, y1 - y0) // 2 - 10
        start = 0.0
        for v, c in zip(values, colours, strict=True):
            extent = 360 * v / sum(values)
            d.pieslice((cx - r, cy - r, cx + r, cy + r), start, start + extent, fill=c)
            start += extent
        return im, rng.choice((f"a pie chart with {n} slices", f"a pie chart titled {title}", "a pie chart"))
    for i in range(5):  # grid lines
        y = y0 + i * (y1 - y0) / 5
        d.line((x0, y, x1, y), fill=(90, 90, 90) if dark else (220, 220, 220))
    d.line((x0, y0, x0, y1, x1, y1), fill=ink, width=2)
    step = (x1 - x0) / n
    if style == "bar":
        for i, v in enumerate(values):
            d.rectangle((x0 + i * step + step * 0.15, y1 - v * (y1 - y0), x0 + (i + 0.85) * step, y1),
                        fill=one if rng.random() < 0.8 else colours[i])
        caption = rng.choice((f"a bar chart titled {title}", f"a bar chart with {n} bars", "a bar graph"))
    elif style == "horizontal":
        bar = (y1 - y0) / n
        for i, v in enumerate(values):
            d.rectangle((x0, y0 + i * bar + bar * 0.2, x0 + v * (x1 - x0), y0 + (i + 0.8) * bar), fill=one)
        caption = rng.choice(("a horizontal bar chart", f"a bar chart titled {title}"))
    else:
        for _ in range(rng.randint(1, 3)):
            points = [(x0 + (i + 0.5) * step, y1 - rng.uniform(0.1, 1.0) * (y1 - y0)) for i in range(n)]
            d.line(points, fill=_colour(rng, 20, 220), width=rng.randint(2, 5))
        caption = rng.choice(("a line graph", f"a line chart titled {title}", "a chart with lines"))
    return im, caption


def chat(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    del photo
    dark = rng.random() < 0.3
    im = Image.new("RGB", (w, h), (24, 26, 30) if dark else _colour(rng, 228, 250))
    d = ImageDraw.Draw(im)
    side = rng.randint(0, 1) * rng.randint(180, 300)  # a contact list on wide chat apps
    if side:
        d.rectangle((0, 0, side, h), fill=(40, 42, 48) if dark else (245, 245, 245))
        for i in range(h // 64):
            d.ellipse((14, 14 + i * 64, 50, 50 + i * 64), fill=_colour(rng, 60, 200))
            d.text((62, 24 + i * 64), rng.choice(VOCABULARY).title(), font=_font(14),
                   fill=(200, 200, 200) if dark else (40, 40, 40))
    head = rng.randint(50, 70)
    d.rectangle((side, 0, w, head), fill=_colour(rng, 20, 150))
    person = rng.choice(("Mara", "Tom", "Lena", "Omar", "Grace", "Work group"))
    d.text((side + 24, head // 2 - 10), person, font=_font(18, bold=True), fill="white")
    y, messages = head + 20, 0
    mine_colour, theirs_colour = _colour(rng, 150, 230), (60, 62, 70) if dark else (255, 255, 255)
    while y < h - 110:
        mine = rng.random() < 0.5
        text = _words(rng, rng.randint(2, 8)).capitalize()
        size = rng.randint(13, 16)
        bw = int(_font(size).getlength(text)) + 30
        x = w - bw - 24 if mine else side + 24
        bh = size + 22
        d.rounded_rectangle((x, y, x + bw, y + bh), rng.randint(8, 18),
                            fill=mine_colour if mine else theirs_colour)
        d.text((x + 15, y + 10), text, font=_font(size),
               fill=(240, 240, 240) if dark and not mine else "black")
        y += bh + rng.randint(10, 26)
        messages += 1
    d.rounded_rectangle((side + 16, h - 62, w - 80, h - 16), 22, fill=(50, 52, 58) if dark else "white")
    d.ellipse((w - 66, h - 62, w - 20, h - 16), fill=mine_colour)
    caption = rng.choice((f"a chat window with messages from {person.lower()}", "a chat conversation",
                          f"a messaging app with {messages} messages", "a chat with text messages"))
    return im, caption


def dialog(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    behind = rng.choice((document, chart, web_page, slide))
    im, _ = behind(rng, w, h, photo)
    im = im.filter(ImageFilter.GaussianBlur(rng.choice((0, 1, 3))))
    if rng.random() < 0.5:
        im = Image.blend(im, Image.new("RGB", im.size, "black"), 0.35)
    d = ImageDraw.Draw(im)
    bw, bh = rng.randint(300, 560), rng.randint(150, 260)
    x, y = (w - bw) // 2 + rng.randint(-60, 60), (h - bh) // 2 + rng.randint(-60, 60)
    face = rng.choice(((245, 245, 245), (255, 255, 255), (50, 52, 58)))
    ink = "white" if sum(face) < 300 else "black"
    d.rounded_rectangle((x, y, x + bw, y + bh), rng.choice((0, 6, 12)), fill=face, outline=(90, 90, 90))
    question = rng.choice(("Save changes to", "Delete", "Replace", "Close", "Download", "Update"))
    thing = rng.choice(VOCABULARY)
    d.text((x + 20, y + 18), f"{question} {thing}?", font=_font(16, bold=True), fill=ink)
    _text_lines(d, rng, (x + 20, y + 50, x + bw - 20, y + bh - 60), 13, ink)
    labels = rng.sample(["OK", "Cancel", "Yes", "No", "Save", "Don't Save", "Close", "Retry"],
                        rng.randint(1, 3))
    bx = x + bw - 20
    for label in labels:
        lw = int(_font(14).getlength(label)) + 36
        bx -= lw
        d.rounded_rectangle((bx, y + bh - 48, bx + lw, y + bh - 16), 5, fill=_colour(rng, 60, 230),
                            outline=(80, 80, 80))
        d.text((bx + 18, y + bh - 40), label, font=_font(14), fill="black")
        bx -= 12
    names = " and ".join(label.lower() for label in labels)
    caption = rng.choice((f"a dialog box with the buttons {names}",
                          f"a dialog asking {question.lower()} {thing}",
                          "a pop-up dialog window", f"a message box with {names} buttons"))
    return im, caption


def code_editor(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    del photo
    dark = rng.random() < 0.6
    im = Image.new("RGB", (w, h), _colour(rng, 15, 45) if dark else _colour(rng, 245, 255))
    d = ImageDraw.Draw(im)
    top = _title_bar(d, rng, w, f"{rng.choice(VOCABULARY)}.js - editor")
    tree = rng.choice((0, rng.randint(150, 260)))
    if tree:
        d.rectangle((0, top, tree, h), fill=(38, 40, 46) if dark else (232, 234, 238))
        for i in range((h - top) // 26):
            name = f"{rng.choice(VOCABULARY)}.{rng.choice(('js', 'ts', 'rs', 'go'))}"
            d.text((16 + 12 * rng.randint(0, 2), top + 10 + i * 26), name,
                   font=_font(12), fill=(180, 180, 180) if dark else (50, 50, 50))
    language = rng.choice(("javascript", "rust", "go"))
    keywords = {"javascript": ("const", "function", "let", "return", "await", "export"),
                "rust": ("fn", "let", "mut", "impl", "pub", "match"),
                "go": ("func", "var", "return", "package", "defer", "type")}[language]
    size = rng.randint(12, 15)
    line_h = int(size * 1.55)
    indent = 0
    for i in range((h - top - 20) // line_h):
        y = top + 10 + i * line_h
        d.text((tree + 10, y), f"{i + 1:>4}", font=_font(size, mono=True), fill=(110, 110, 120))
        if rng.random() < 0.12:
            continue
        indent = max(0, min(4, indent + rng.choice((-1, 0, 0, 1))))
        x = tree + 70 + indent * size * 2
        for token in (rng.choice(keywords), f"{rng.choice(VOCABULARY)}_{rng.choice(VOCABULARY)}", "= {"):
            colour = _colour(rng, 110, 255) if dark else _colour(rng, 0, 140)
            d.text((x, y), token, font=_font(size, mono=True), fill=colour)
            x += int(_font(size, mono=True).getlength(token + " "))
    theme = "dark " if dark else ""
    caption = rng.choice((f"a {theme}code editor with source code", f"a code editor showing {language} code",
                          f"source code of a program in a {theme}editor", "lines of code in a code editor"))
    return im, caption


def slide(rng: random.Random, w: int, h: int, photo: Photo | None) -> tuple[Image.Image, str]:
    background = _colour(rng)
    im = Image.new("RGB", (w, h), background)
    d = ImageDraw.Draw(im)
    ink = "white" if sum(background) < 380 else "black"
    if rng.random() < 0.5:  # a coloured band behind the title
        d.rectangle((0, 0, w, h // 5), fill=_colour(rng))
    title = _words(rng, rng.randint(2, 4))
    d.text((w // 12, h // 14), title.title(), font=_font(rng.randint(30, 52), bold=True), fill=ink)
    with_photo = rng.random() < 0.35
    right = w // 2 if with_photo else w - w // 12
    bullets = rng.randint(2, 5)
    for i in range(bullets):
        y = h // 4 + i * (h // 8)
        d.rectangle((w // 12, y + 10, w // 12 + 12, y + 22), fill=ink)
        line = _words(rng, 5).capitalize()
        face = _font(rng.randint(20, 30))
        while face.getlength(line) > right - w // 12 - 40 and " " in line:
            line = line.rsplit(" ", 1)[0]
        d.text((w // 12 + 30, y), line, font=face, fill=ink)
    if with_photo:
        pw = w // 3
        im.paste(_photo_image(photo, rng, (pw, pw * 3 // 4)), (w // 2 + 40, h // 4))
        return im, f"a presentation slide titled {title} with {_photo_phrase(photo)}"
    caption = rng.choice((f"a presentation slide titled {title}", f"a slide with {bullets} bullet points",
                          "a presentation slide with a title and bullet points"))
    return im, caption


RENDERERS: dict[str, Callable[[random.Random, int, int, Photo | None], tuple[Image.Image, str]]] = {
    "document": document, "web page": web_page, "chart": chart, "chat": chat, "dialog": dialog,
    "code editor": code_editor, "slide": slide,
}


def render(kind: str, seed: int, photos: Sequence[Photo] = ()) -> tuple[Image.Image, str]:
    """One screen of ``kind`` and its caption, the same for the same seed and photos."""
    rng = random.Random(f"train-screen-{kind}-{seed}")
    w, h = rng.choice(SIZES)
    photo = rng.choice(photos) if photos else None
    return RENDERERS[kind](rng, w, h, photo)


def write_screen_set(folder: str | Path, per_kind: int, photos: Sequence[Photo] = (), *,
                     seed: int = 0, split: str = "train") -> Path:
    """Render ``per_kind`` screens of each kind into ``folder`` with a Karpathy-style ``captions.json``;
    a folder already holding the same set (same count, seed, photos and drawing) is reused."""
    folder = Path(folder)
    out = folder / "captions.json"
    key = {"per_kind": per_kind, "seed": seed, "photos": len(photos), "version": FORMAT_VERSION,
           "first_photo": photos[0].path if photos else None}
    if out.exists():
        try:
            if json.loads(out.read_text(encoding="utf-8")).get("key") == key:
                return out
        except (OSError, ValueError):
            pass
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for kind in KINDS:
        for i in range(per_kind):
            image, caption = render(kind, seed * 1_000_000 + i, photos)
            name = f"{kind.replace(' ', '-')}-{seed}-{i}.png"
            # the model sees 224 x 224: a smaller file keeps decoding fast and changes nothing it sees
            image.thumbnail((640, 640))
            image.save(folder / "images" / name, optimize=False)
            images.append({"filename": name, "split": split, "kind": kind,
                           "sentences": [{"raw": caption}]})
    out.write_text(json.dumps({"key": key, "images": images}), encoding="utf-8")
    return out

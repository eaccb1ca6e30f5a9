"""Tiny generated datasets (a coloured ball on a coloured ground) for tests, demos and smoke runs.

Each image is drawn from two facts, the ball's colour and the ground, and its captions and questions
say those facts, so a model can learn them in a few steps. Words come from the vocabulary of
:func:`assistant.vision.testing.tiny_tokenizer`, so the tiny test checkpoints tokenize them as whole words.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "black": (10, 10, 10),
}
GROUNDS: dict[str, tuple[int, int, int]] = {
    "grass": (40, 160, 60),
    "snow": (245, 245, 245),
    "sand": (200, 170, 110),
}
# "sand" is not in the tiny vocabulary; "beach" is, and is what the captions say.
GROUND_WORDS = {"grass": "grass", "snow": "snow", "sand": "beach"}


def draw_image(colour: str, ground: str, size: int = 32, jitter: int = 0) -> Image.Image:
    """A ball of ``colour`` on ``ground``; ``jitter`` moves the ball so that images differ."""
    image = Image.new("RGB", (size, size), GROUNDS[ground])
    draw = ImageDraw.Draw(image)
    r = size // 4
    cx = size // 2 + (jitter % 5 - 2) * size // 16
    cy = size // 2 + (jitter // 5 % 5 - 2) * size // 16
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[colour])
    return image


def _scenes(n: int, seed: int) -> list[tuple[str, str, int]]:
    pairs = [(c, g) for c in COLOURS for g in GROUNDS]
    rng = random.Random(seed)
    return [(*pairs[i % len(pairs)], rng.randrange(25)) for i in range(n)]


def captions_for(colour: str, ground: str) -> list[str]:
    where = GROUND_WORDS[ground]
    return [f"a {colour} ball on the {where}", f"a picture of a {colour} ball in the {where}"]


def make_caption_dataset(
    folder: str | Path,
    n_images: int = 12,
    *,
    splits: dict[str, int] | None = None,
    size: int = 32,
    seed: int = 0,
    name: str = "captions.json",
) -> Path:
    """Write images and a Karpathy-format JSON (two captions per image) into ``folder``; return the JSON.

    ``splits`` maps split name to image count (default: all ``train``).
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    splits = splits or {"train": n_images}
    entries, sentid, index = [], 0, 0
    for split, count in splits.items():
        for colour, ground, jitter in _scenes(count, seed + len(entries)):
            filename = f"img{index:04d}.png"
            draw_image(colour, ground, size, jitter).save(folder / "images" / filename)
            sentences = []
            for text in captions_for(colour, ground):
                sentences.append({"raw": text, "tokens": text.split(), "imgid": index, "sentid": sentid})
                sentid += 1
            entries.append({"filename": filename, "imgid": index, "split": split, "sentences": sentences})
            index += 1
    out = folder / name
    out.write_text(json.dumps({"dataset": "toy", "images": entries}))
    return out


def make_vqa_dataset(
    folder: str | Path,
    n_images: int = 12,
    *,
    split: str | None = None,
    size: int = 32,
    seed: int = 0,
    name: str = "vqa.jsonl",
) -> Path:
    """Write images and JSONL VQA rows (``what color is the ball ?`` and ``where is the ball ?``)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (colour, ground, jitter) in enumerate(_scenes(n_images, seed)):
        filename = f"images/q{seed}_{index:04d}.png"
        draw_image(colour, ground, size, jitter).save(folder / filename)
        for number, (question, answer) in enumerate(
            [("what color is the ball ?", colour), ("where is the ball ?", GROUND_WORDS[ground])]
        ):
            row = {
                "image": filename,
                "question": question,
                "answer": answer,
                "question_id": f"{seed}-{index}-{number}",
            }
            if split:
                row["split"] = split
            rows.append(row)
    out = folder / name
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out

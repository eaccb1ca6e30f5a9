"""Tesseract, run as the system's ``tesseract`` program.

The image goes to the program through a pipe (uncompressed PPM on stdin) and the words come back on
stdout as TSV, so a screenshot never touches the disk. (pytesseract, the usual wrapper, writes every
image to a temporary file; screen content must stay in memory.)
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import statistics
import subprocess
from typing import Any

from assistant.ocr.engine import Line, OcrError

# Below this many pixels the image is doubled before reading: on 10 px text that raised Tesseract's
# character accuracy from 96% to 99% here, for about 0.4 s; a whole screen is large enough as it is.
UPSCALE_BELOW_PIXELS = 1_000_000
TIMEOUT_S = 60.0
# Words on one Tesseract line further apart than this many text heights are separate items.
SPLIT_GAP = 2.0
# Reading runs beside the captioner; at a lower priority the caption (what is said first) gets the CPU.
_NICE = ("nice", "-n", "10") if shutil.which("nice") else ()


class TesseractEngine:
    name = "tesseract"

    def __init__(self, language: str = "eng", program: str | None = None) -> None:
        self.language = language
        self.program = program or shutil.which("tesseract")

    def problem(self) -> str | None:
        if not self.program:
            return "the tesseract program is not installed (Debian/Ubuntu: tesseract-ocr)"
        return None

    def read_lines(self, image: Any) -> list[Line]:
        if not self.program:
            raise OcrError(f"Tesseract cannot run: {self.problem()}.")
        scale = 2 if image.width * image.height < UPSCALE_BELOW_PIXELS else 1
        if scale != 1:
            from PIL import Image

            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PPM")
        # One thread: the machine's other cores belong to the captioner and the user's own programs.
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            done = subprocess.run([*_NICE, self.program, "stdin", "stdout", "-l", self.language, "--psm", "3",
                                   "tsv"],
                                  input=buffer.getvalue(), capture_output=True, timeout=TIMEOUT_S, env=env,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise OcrError(f"Tesseract took longer than {TIMEOUT_S:.0f} seconds and was stopped.") from None
        except OSError as exc:
            raise OcrError(f"Tesseract could not be started: {exc}.") from exc
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reason given"]
            raise OcrError(f"Tesseract failed: {reason[0]}.")
        return parse_tsv(done.stdout.decode("utf-8", errors="replace"), scale)


def parse_tsv(tsv: str, scale: int = 1) -> list[Line]:
    """Tesseract's word rows joined into its lines, boxes in the original image's pixels."""
    lines: dict[tuple[int, int, int], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        lines.setdefault(key, []).append(row)
    out = []
    for row_words in lines.values():
        for words in _pieces(row_words):
            out.append(_line(words, scale))
    return out


def _pieces(words: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """A Tesseract line cut where words stand far apart or on another row: it sometimes runs two
    columns, a row of buttons, or a title bar and the menu under it into one line. The layout step joins
    what belongs together again, the same for every engine."""
    height = statistics.median(int(w["height"]) for w in words)
    pieces: list[list[dict[str, str]]] = [[words[0]]]
    for word in words[1:]:
        last = pieces[-1][-1]
        gap = int(word["left"]) - (int(last["left"]) + int(last["width"]))
        top, last_top = int(word["top"]), int(last["top"])
        overlap = min(top + int(word["height"]), last_top + int(last["height"])) - max(top, last_top)
        if gap > SPLIT_GAP * height or gap < -height or overlap < 0.3 * height:
            pieces.append([word])
        else:
            pieces[-1].append(word)
    return pieces


def _line(words: list[dict[str, str]], scale: int) -> Line:
    # Median top and height, not the union of the boxes: one odd box (a glyph joined to a rule or an
    # icon) would make the line look like a heading and break its paragraph apart.
    left = min(int(w["left"]) for w in words)
    right = max(int(w["left"]) + int(w["width"]) for w in words)
    top = int(statistics.median(int(w["top"]) for w in words))
    height = int(statistics.median(int(w["height"]) for w in words))
    confidences = [float(w["conf"]) for w in words if float(w["conf"]) >= 0]
    confidence = sum(confidences) / len(confidences) / 100 if confidences else 0.0
    text = " ".join(w["text"].strip() for w in words)
    return Line(text, left // scale, top // scale, (right - left) // scale, max(1, height // scale),
                confidence)

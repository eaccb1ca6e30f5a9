"""From an engine's lines to paragraphs in reading order, the same for every engine.

Three steps, each small enough to reason about:

1. **Runs**: pieces on one row that sit close together (an engine may cut a sentence at a wide space)
   become one line; pieces far apart (the items of a menu bar) stay separate.
2. **Paragraphs**: a line joins the paragraph whose last line is just above it, overlaps it sideways and
   has text of about its size. A blank line's worth of space, another column or another text size starts
   a new paragraph.
3. **Order**: a recursive XY-cut: the group is cut at the gutters between its columns (read left to
   right) where it has real columns, else at the rows of space between its sections (read top to
   bottom), and each part is cut again. That reads a page with a header, two columns and a footer, a
   sidebar next to an article, or a row of buttons, the way a sighted reader would.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from dataclasses import dataclass, field

from assistant.ocr.engine import Line

# Fractions of the text height (the taller of the two lines compared).
RUN_GAP = 0.9  # a wider space between two pieces on a row separates two items
# A wider gap between two lines starts a new paragraph. Boxes hug the ink (about 0.7 em), so lines set
# at 1.5 em stand about one box height apart, and a paragraph break adds about one more em.
PARAGRAPH_GAP = 1.5
SIZE_RATIO = 1.45  # text this much taller or shorter is a heading or a caption, not the same paragraph
MIN_GUTTER = 2.0  # a gap between columns is at least this many text heights wide
COLUMN_REACH = 0.4  # each column reaches down at least this share of its group
MIN_CONFIDENCE = 0.5  # below this a line is mostly noise (edges of photos, icons read as letters)

_WORDY = re.compile(r"[^\W_]", re.UNICODE)  # a letter or a digit
_EDGES = re.compile(r"^[\s|¦]+|[\s|¦]+$")


@dataclass
class Paragraph:
    lines: list[Line] = field(default_factory=list)

    @property
    def left(self) -> int:
        return min(line.left for line in self.lines)

    @property
    def right(self) -> int:
        return max(line.right for line in self.lines)

    @property
    def top(self) -> int:
        return min(line.top for line in self.lines)

    @property
    def bottom(self) -> int:
        return max(line.bottom for line in self.lines)

    @property
    def text_height(self) -> float:
        return sum(line.height for line in self.lines) / len(self.lines)

    @property
    def text(self) -> str:
        return join_lines([line.text for line in self.lines])


def join_lines(texts: list[str]) -> str:
    """Lines of one paragraph as running text; a word hyphenated at a line end is joined again."""
    out = ""
    for text in texts:
        text = text.strip()
        if not text:
            continue
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and text[:1].islower():
            out = out[:-1] + text
        else:
            out = f"{out} {text}" if out else text
    return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _same_row(a: Line, b: Line) -> bool:
    return _overlap(a.top, a.bottom, b.top, b.bottom) >= 0.5 * min(a.height, b.height)


def merge_runs(lines: list[Line]) -> list[Line]:
    """Join pieces on one row that are a word-space apart (step 1)."""
    out: list[Line] = []
    # left to right, so that a piece can only join one that ends before it starts
    for line in sorted(lines, key=lambda item: (item.left, item.top)):
        for i, prev in enumerate(out):
            gap = line.left - prev.right
            height = max(prev.height, line.height)
            if _same_row(prev, line) and -0.2 * height <= gap <= RUN_GAP * height:
                left, top = prev.left, min(prev.top, line.top)
                right, bottom = max(prev.right, line.right), max(prev.bottom, line.bottom)
                confidence = min(prev.confidence, line.confidence)
                out[i] = Line(f"{prev.text} {line.text}", left, top, right - left, bottom - top, confidence)
                break
        else:
            out.append(line)
    return out


def _continues(paragraph: Paragraph, line: Line) -> bool:
    last = paragraph.lines[-1]
    height = max(last.height, line.height)
    gap = line.top - last.bottom
    if not -0.3 * height <= gap <= PARAGRAPH_GAP * height:
        return False
    if max(last.height, line.height) > SIZE_RATIO * min(last.height, line.height):
        return False
    # sideways: the lines overlap, or start at the same place (a short last line of a paragraph)
    return (_overlap(paragraph.left, paragraph.right, line.left, line.right) > 0
            or abs(paragraph.left - line.left) <= 2 * height)


def group_paragraphs(lines: list[Line]) -> list[Paragraph]:
    """Lines -> paragraphs (step 2), in no particular order."""
    paragraphs: list[Paragraph] = []
    for line in sorted(lines, key=lambda item: (item.top, item.left)):
        candidates = [p for p in paragraphs if _continues(p, line)]
        if candidates:
            # the nearest above, then the most overlapping: two columns side by side stay apart
            best = min(candidates, key=lambda p: (line.top - p.lines[-1].bottom,
                                                  -_overlap(p.left, p.right, line.left, line.right)))
            best.lines.append(line)
        else:
            paragraphs.append(Paragraph([line]))
    return paragraphs


def _gaps(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The empty stretches (start, end) between the spans' union, in order."""
    gaps = []
    spans = sorted(spans)
    reach = spans[0][1]
    for start, end in spans[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def _split(items: list[Paragraph], gaps: list[tuple[int, int]], low: str) -> list[list[Paragraph]]:
    groups: list[list[Paragraph]] = [[] for _ in range(len(gaps) + 1)]
    for item in items:
        start = getattr(item, low)
        groups[sum(1 for gap in gaps if start >= gap[1])].append(item)
    return groups


def reading_order(paragraphs: list[Paragraph]) -> list[Paragraph]:
    """Recursive XY-cut (step 3). Columns first, where there are real ones: gutters at least
    MIN_GUTTER text heights wide that leave every part reaching down most of the group (a heading or a
    footer alone beside a gutter is not a column). Else the rows between sections, top to bottom.
    Each part is cut again."""
    if len(paragraphs) <= 1:
        return list(paragraphs)
    top, bottom = min(p.top for p in paragraphs), max(p.bottom for p in paragraphs)
    height = statistics.median(p.text_height for p in paragraphs)
    gutters = [g for g in _gaps([(p.left, p.right) for p in paragraphs])
               if g[1] - g[0] >= MIN_GUTTER * height]
    if gutters:
        columns = _split(paragraphs, gutters, "left")
        reach = [max(p.bottom for p in c) - min(p.top for p in c) for c in columns]
        if all(r >= COLUMN_REACH * (bottom - top) for r in reach):
            return [p for column in columns for p in reading_order(column)]
    rows = _gaps([(p.top, p.bottom) for p in paragraphs])
    if rows:
        # only at the widest row of space: a narrower one may belong to a column structure inside a part
        widest = max(rows, key=lambda g: g[1] - g[0])
        return [p for row in _split(paragraphs, [widest], "top") for p in reading_order(row)]
    columns = _split(paragraphs, _gaps([(p.left, p.right) for p in paragraphs]), "left")
    if len(columns) > 1:
        return [p for column in columns for p in reading_order(column)]
    return sorted(paragraphs, key=lambda p: (p.top, p.left))


def clean(lines: list[Line], min_confidence: float = MIN_CONFIDENCE) -> list[Line]:
    """Lines worth reading: some letters or digits, and an engine that was fairly sure. The edges of
    buttons and boxes, read as "|" at a line's ends, are dropped."""
    out = []
    for line in lines:
        text = _EDGES.sub("", line.text)
        if text and _WORDY.search(text) and line.confidence >= min_confidence:
            out.append(dataclasses.replace(line, text=text))
    return out


def arrange(lines: list[Line], min_confidence: float = MIN_CONFIDENCE) -> list[Paragraph]:
    """An engine's lines as paragraphs in reading order."""
    return reading_order(group_paragraphs(merge_runs(clean(lines, min_confidence))))

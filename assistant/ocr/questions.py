"""Which typed questions are about the text on the image, and their answers from what OCR read.

"What does it say?", "read the sign", "what's the title?" are answered from the text, not by the
captioner, which cannot read. Everything else returns None and goes to the captioner as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.ocr.layout import SIZE_RATIO
from assistant.ocr.result import NO_TEXT, TextResult, as_sentence

ALL, TITLE, CONTAINS = "all", "title", "contains"

_FILLER = r"(?:please\s+|can you\s+|could you\s+|would you\s+)?"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (TITLE, re.compile(r"\b(?:title|heading|headline|header|caption of the page|name of (?:the|this) "
                       r"(?:window|page|document|app))\b")),
    (CONTAINS, re.compile(r"^(?:does|do|is)\s+(?:it|this|that|the\s+\w+)\s+(?:say|read|mention|contain"
                          r"|include)s?\s+(?P<words>.+)$")),
    (CONTAINS, re.compile(r"^is\s+(?:the\s+word|the\s+text|the\s+phrase)\s+(?P<words>.+?)"
                          r"(?:\s+(?:on|in)\s+.+)?$")),
    (ALL, re.compile(rf"^{_FILLER}(?:read|read out|read aloud|read me)\b")),
    (ALL, re.compile(r"\bwhat(?:'s| is| does| do)?\s+(?:it|this|that|they|the\s+\w+(?:\s+\w+)?)?\s*"
                     r"(?:say|says|read|reads)\b")),
    (ALL, re.compile(r"\bwhat(?:'s| is)\s+(?:written|the text|the writing|on the (?:sign|label|screen|page|"
                     r"button|note|paper|board|poster|menu))\b")),
    (ALL, re.compile(r"^(?:is there|are there|any)\s+(?:any\s+|some\s+)?(?:text|writing|words)\b")),
]


@dataclass(frozen=True)
class TextQuestion:
    kind: str  # ALL, TITLE or CONTAINS
    words: str = ""  # for CONTAINS: what to look for


def route(question: str) -> TextQuestion | None:
    """A TextQuestion when ``question`` asks about the text on the image; None for the captioner."""
    q = " ".join(question.lower().replace("’", "'").split()).strip(" ?!.")
    for kind, pattern in _PATTERNS:
        match = pattern.search(q)
        if match:
            words = match.groupdict().get("words") or ""
            return TextQuestion(kind, words.strip(" '\"“”"))
    return None


def answer(question: TextQuestion, text: TextResult) -> str:
    """The spoken answer to a text question, from what was read."""
    if not text.ok:
        return text.spoken
    paragraphs = text.paragraph_texts
    if not paragraphs:
        return NO_TEXT
    if question.kind == TITLE:
        return f"The title seems to be: {as_sentence(_title(text))}"
    if question.kind == CONTAINS:
        found = _find(question.words, paragraphs)
        if found is None:
            return f"No, I do not see “{question.words}” in the text."
        return f"Yes: {as_sentence(found)}"
    return text.spoken


def _title(text: TextResult) -> str:
    """The largest text near the top; the first paragraph when all text is one size."""
    paragraphs = text.paragraph_texts
    if not text.heights or len(text.heights) != len(paragraphs):
        return paragraphs[0]
    # Among the first few paragraphs (a title sits near the top), clearly taller text; else the first.
    # "Clearly": boxes hug the ink, so a line with descenders (g, y) is a third taller at the same size.
    head = list(range(min(6, len(paragraphs))))
    best = max(head, key=lambda i: (text.heights[i], -i))
    usual = sorted(text.heights[i] for i in head)[len(head) // 2]
    return paragraphs[best] if text.heights[best] >= SIZE_RATIO * usual else paragraphs[0]


def _find(words: str, paragraphs: list[str]) -> str | None:
    needle = " ".join(words.lower().split())
    if not needle:
        return None
    for paragraph in paragraphs:
        if needle in " ".join(paragraph.lower().split()):
            return paragraph
    return None

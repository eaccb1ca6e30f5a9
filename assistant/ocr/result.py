"""What reading an image gives: paragraphs of lines in reading order, as text to show and to speak."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NO_TEXT = "No text was found."
_ENDS_SENTENCE = (".", "!", "?", ":", ";", "…")


def as_sentence(text: str) -> str:
    """A paragraph as one spoken sentence: a heading or a button label gets a full stop, so the voice
    pauses after it instead of running it into the next one."""
    text = text.strip()
    return text if not text or text.endswith(_ENDS_SENTENCE) else text + "."


@dataclass
class TextResult:
    image: str  # a label for the image (a file name, "screen"), never its content
    paragraphs: list[list[str]] = field(default_factory=list)  # each paragraph's lines
    heights: list[float] = field(default_factory=list)  # each paragraph's text height in pixels
    engine: str | None = None
    seconds: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def paragraph_texts(self) -> list[str]:
        from assistant.ocr.layout import join_lines

        return [join_lines(lines) for lines in self.paragraphs]

    @property
    def text(self) -> str:
        """The text to show and copy: paragraphs apart by a blank line, lines as they were."""
        return "\n\n".join("\n".join(lines) for lines in self.paragraphs)

    @property
    def spoken(self) -> str:
        """The text to say: each paragraph as running text ending in a sentence stop."""
        if self.error:
            return self.error
        if not self.paragraphs:
            return NO_TEXT
        return " ".join(as_sentence(p) for p in self.paragraph_texts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image, "text": self.text,
                               "paragraphs": self.paragraph_texts, "engine": self.engine,
                               "seconds": None if self.seconds is None else round(self.seconds, 3)}
        if self.error:
            out["error"] = self.error
        return out

"""What the engine's tasks return: one small record per input, with an error instead of a result when that
input failed, so one bad image never costs the rest of the batch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from assistant.vision.errors import VisionError


@dataclass
class Result:
    image: str
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, exc: VisionError) -> Result:
        self.error, self.error_code = str(exc), exc.code
        return self

    def to_dict(self) -> dict[str, object]:
        row = asdict(self)
        if self.ok:
            row.pop("error")
            row.pop("error_code")
        return row


@dataclass
class CaptionResult(Result):
    caption: str | None = None
    confidence: float | None = None


@dataclass
class AnswerResult(Result):
    question: str = ""
    answer: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None


@dataclass
class MatchResult(Result):
    text: str = ""
    score: float | None = None

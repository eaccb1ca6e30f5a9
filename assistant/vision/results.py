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


@dataclass
class DescriptionResult(Result):
    """A caption with the signals of its honesty (issue #22) and what to say.

    ``sentence`` and ``level`` (``sure``/``probably``/``unsure``) come from :func:`assistant.honesty.phrase`;
    ``confidence`` is the calibrated probability that the caption names no object that is not there.
    ``itm`` is None when the checkpoint has no ITM head and none was given; ``labels`` are empty when no
    classifier ran. ``caption`` is the model's caption; ``spoken_caption`` what the sentence says of it:
    the caption, its simplified form or the caption re-decoded from the classifier's label (``source``:
    ``caption``, ``caption+simplified``, ``grounded``, ``grounded+simplified``; ``grounded`` is true for
    the last two). ``token_confidence`` and ``itm`` are those of ``caption``.
    """

    caption: str | None = None
    token_confidence: float | None = None
    itm: float | None = None
    labels: list[tuple[str, float]] | None = None
    confidence: float | None = None
    sentence: str | None = None
    level: str | None = None
    spoken_caption: str | None = None
    source: str | None = None
    grounded: bool = False

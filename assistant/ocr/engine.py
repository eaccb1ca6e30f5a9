"""The one small interface every OCR engine is behind, and the choice between them.

An engine turns an RGB image into :class:`Line` objects (text, box, confidence) in any order; grouping
them into paragraphs in reading order is :mod:`assistant.ocr.layout`'s job, the same for every engine.

The default (``"auto"``) is Tesseract where the system has it: on screen text it was as accurate as
RapidOCR and 3-8 times faster here (see ``tests/benchmarks/ocr.py``). RapidOCR is the fallback that
installs from the package registry with its models inside the wheel, so reading works on a machine
without Tesseract too (Windows, macOS).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

ENGINE_NAMES = ("auto", "tesseract", "rapidocr")


class OcrError(RuntimeError):
    """Reading failed or no engine can run here; the message is a sentence for the user."""


@dataclass(frozen=True)
class Line:
    """One line (or a run of words on one line) as an engine read it."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float = 1.0  # 0..1

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def middle(self) -> float:
        return self.top + self.height / 2


class OcrEngine(Protocol):
    name: str

    def problem(self) -> str | None:
        """None when the engine can run here; otherwise why not, in words. Cheap; imports nothing heavy."""

    def read_lines(self, image: Any) -> list[Line]:
        """The lines on ``image`` (an RGB PIL image). Raises OcrError."""


def _factories() -> dict[str, Callable[[], OcrEngine]]:
    from assistant.ocr.rapid import RapidOcrEngine
    from assistant.ocr.tesseract import TesseractEngine

    return {"tesseract": TesseractEngine, "rapidocr": RapidOcrEngine}


def pick_engine(name: str = "auto") -> OcrEngine:
    """The engine called ``name``, or for ``"auto"`` the first that can run here. OcrError in words when
    the one asked for (or every one, for "auto") cannot run."""
    factories = _factories()
    if name != "auto":
        if name not in factories:
            raise OcrError(f"There is no OCR engine called {name!r}; "
                           f"choose one of {', '.join(ENGINE_NAMES)}.")
        engine = factories[name]()
        problem = engine.problem()
        if problem:
            raise OcrError(f"The OCR engine {name} cannot run: {problem}.")
        return engine
    problems = []
    for engine_name, factory in factories.items():
        engine = factory()
        problem = engine.problem()
        if problem is None:
            return engine
        log.info("OCR engine %s not usable: %s", engine_name, problem)
        problems.append(f"{engine_name}: {problem}")
    raise OcrError("No OCR engine can run here (" + "; ".join(problems) + "). Install Tesseract "
                   "(tesseract-ocr) or the rapidocr package.")

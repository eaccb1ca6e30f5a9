"""Reading the text on an image: one engine, loaded once and kept, behind one call."""

from __future__ import annotations

import threading
import time
from typing import Any

from assistant.ocr.engine import OcrEngine, OcrError, pick_engine
from assistant.ocr.layout import arrange
from assistant.ocr.result import TextResult


class TextReader:
    """Thread-safe; the engine is chosen on first use (``"auto"``: Tesseract, else RapidOCR)."""

    def __init__(self, engine: str | OcrEngine = "auto") -> None:
        self._choice = engine
        self._engine: OcrEngine | None = None if isinstance(engine, str) else engine
        self._lock = threading.Lock()

    @property
    def engine(self) -> OcrEngine:
        with self._lock:
            if self._engine is None:
                assert isinstance(self._choice, str)
                self._engine = pick_engine(self._choice)
            return self._engine

    def read(self, image: Any, label: str | None = None) -> TextResult:
        """The text on ``image`` (a path, bytes or a PIL image). Never raises for a bad image or a
        missing engine: the result carries the error, in words for the user."""
        from assistant.vision.errors import ImageError
        from assistant.vision.io import describe_source, load_image

        label = label or describe_source(image)
        started = time.perf_counter()
        try:
            picture = load_image(image)
        except ImageError as exc:
            return TextResult(image=label, error=str(exc), seconds=time.perf_counter() - started)
        try:
            engine = self.engine
            lines = engine.read_lines(picture)
        except OcrError as exc:
            return TextResult(image=label, error=str(exc), seconds=time.perf_counter() - started)
        paragraphs = arrange(lines)
        return TextResult(image=label, paragraphs=[[line.text for line in p.lines] for p in paragraphs],
                          heights=[p.text_height for p in paragraphs], engine=engine.name,
                          seconds=time.perf_counter() - started)

"""Describing an image: the one function behind the app's hotkeys and ``blip-assistant describe``.

Qt-free. The model is loaded on first use (or ahead of time by :meth:`Describer.load`) and kept, so the
second description costs only the model's own time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from assistant.vision import defaults

# Shorter than the engine's batch default: a spoken description should be a sentence, not a paragraph.
SPOKEN_MAX_NEW_TOKENS = 20


@dataclass
class Description:
    image: str
    caption: str | None = None
    confidence: float | None = None
    text: str | None = None  # what is spoken: the caption as a sentence
    error: str | None = None
    error_code: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def sentence(caption: str) -> str:
    """A caption as a spoken sentence: capital first letter, one full stop."""
    caption = caption.strip()
    if not caption:
        return caption
    caption = caption[0].upper() + caption[1:]
    return caption if caption.endswith((".", "!", "?")) else caption + "."


class Describer:
    """Owns one loaded model. Thread-safe: one description at a time (the model is not re-entrant)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, *, threads: int | None = 1,
                 device: str = "cpu") -> None:
        self.model_name, self.threads, self.device = model, threads, device
        self._blip: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._blip is not None

    def load(self) -> Any:
        """Load the model now (the app does this in the background after its tray is up)."""
        with self._lock:
            if self._blip is None:
                from assistant import vision

                self._blip = vision.load(self.model_name, "caption", device=self.device, threads=self.threads)
            return self._blip

    def describe(self, image: Any, label: str | None = None) -> Description:
        """Describe one image (a path, bytes, a PIL image or an array). Never raises for a bad image:
        the Description carries the error, in words for the user."""
        from assistant.vision.io import describe_source

        blip = self.load()
        started = time.perf_counter()
        with self._lock:
            result = blip.caption(image, max_new_tokens=SPOKEN_MAX_NEW_TOKENS)[0]
        out = Description(image=label or describe_source(image), seconds=time.perf_counter() - started)
        if not result.ok:
            out.error, out.error_code = result.error, result.error_code
            return out
        out.caption, out.confidence = result.caption, result.confidence
        out.text = sentence(result.caption or "")
        return out

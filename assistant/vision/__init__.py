"""The vision engine: BLIP checkpoints (the built-in model, any Salesforce BLIP), captions and answers.

It knows images and text, nothing about Qt. ``import assistant.vision`` is cheap: torch and transformers
load on first use of :func:`load` or :class:`Blip`, so the app's tray comes up before they do.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# transformers 5 may fetch "hub kernels" (code) from the Hugging Face hub for some layers; the assistant
# reaches the network only for a model download the user asked for. Set before transformers is imported.
os.environ.setdefault("USE_HUB_KERNELS", "0")

__all__ = ["Blip", "GenerationSettings", "ImageFeatures", "VisionError", "load"]

_LAZY = {
    "Blip": "assistant.vision.blip",
    "load": "assistant.vision.blip",
    "VisionError": "assistant.vision.errors",
    "ImageFeatures": "assistant.vision.runtime.encoding",
    "GenerationSettings": "assistant.vision.tasks.generation",
}

if TYPE_CHECKING:
    from assistant.vision.blip import Blip, load
    from assistant.vision.errors import VisionError
    from assistant.vision.runtime.encoding import ImageFeatures
    from assistant.vision.tasks.generation import GenerationSettings


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assistant.vision' has no attribute {name!r}")

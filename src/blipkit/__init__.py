"""blipkit: BLIP vision-language models made practical.

``import blipkit`` is cheap: torch and transformers load on first use of :func:`load` or :class:`Blip`,
so torch-free parts (datasets, metrics, the CLI's help) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Blip", "BlipkitError", "GenerationSettings", "ImageFeatures", "__version__", "load"]

_LAZY = {
    "Blip": "blipkit.blip",
    "load": "blipkit.blip",
    "BlipkitError": "blipkit.errors",
    "ImageFeatures": "blipkit.runtime.encoding",
    "GenerationSettings": "blipkit.tasks.generation",
}

if TYPE_CHECKING:
    from blipkit.blip import Blip, load
    from blipkit.errors import BlipkitError
    from blipkit.runtime.encoding import ImageFeatures
    from blipkit.tasks.generation import GenerationSettings


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'blipkit' has no attribute {name!r}")

"""The one place that knows where the assistant's files (``resources/``) are.

The same lookup serves a source checkout, an installed wheel and a PyInstaller bundle, so no other
module builds a path to a resource by hand.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

RESOURCES_ENV = "BLIP_ASSISTANT_RESOURCES"


@cache
def root() -> Path:
    """The ``resources`` folder.

    Looked for, in order: ``BLIP_ASSISTANT_RESOURCES``; a PyInstaller bundle's data folder
    (``sys._MEIPASS/resources``); the installed package ``assistant_resources`` (a wheel maps the
    top-level ``resources/`` folder onto it); the source checkout beside ``assistant/``.
    """
    env = os.environ.get(RESOURCES_ENV)
    candidates = [Path(env)] if env else []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources")
    try:
        import assistant_resources  # type: ignore[import-not-found]

        candidates.extend(Path(p) for p in assistant_resources.__path__)
    except ImportError:
        pass
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    for path in candidates:
        if (path / "models").is_dir():
            return path
    raise FileNotFoundError(
        "the assistant's resources folder is missing (looked in: "
        + ", ".join(str(p) for p in candidates) + "); reinstall blip-assistant")


def path(*parts: str) -> Path:
    """A file or folder under ``resources/``, e.g. ``path("images", "chelsea.jpg")``."""
    return root().joinpath(*parts)


def builtin_model_dir() -> Path:
    return path("models", "builtin")


def example_images_dir() -> Path:
    return path("images")

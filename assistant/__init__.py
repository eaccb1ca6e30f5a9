"""blip-assistant: a desktop assistant that describes the screen and images aloud, answers questions about
them, and learns from the user's corrections, all on the user's own computer.

Packages: ``vision`` (the BLIP engine), ``speech``, ``capture``, ``hotkeys``, ``app`` (the Qt tray app),
``training``, ``datasets`` and ``evaluation`` (building and measuring models). Importing this package is
cheap: nothing heavy loads until it is used.
"""

from __future__ import annotations


def _version() -> str:
    # One version number, from pyproject.toml: the installed distribution's metadata carries it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("blip-assistant")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()

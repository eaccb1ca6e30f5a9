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
    from pathlib import Path

    try:
        return version("blip-assistant")
    except PackageNotFoundError:
        pass
    here = Path(__file__).resolve().parent
    try:  # a bundle whose metadata was dropped: packaging/bundle_version.py wrote it at build time
        return (here / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        pass
    try:  # a source tree that was never installed
        import tomllib

        project = tomllib.loads((here.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        return project["version"]
    except (OSError, KeyError, ValueError):
        return "0+unknown"


__version__ = _version()

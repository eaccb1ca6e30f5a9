"""``blipkit serve``: BLIP over HTTP, with micro-batching, a web page, metrics and an optional API key.

Build the app with :func:`create_app` (tests, embedding in another ASGI server) or run it with
:func:`blipkit.serve.runner.serve`. Importing this package is cheap: the app (and torch) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ServeSettings", "create_app"]

_LAZY = {"create_app": "blipkit.serve.app", "ServeSettings": "blipkit.serve.settings"}

if TYPE_CHECKING:
    from blipkit.serve.app import create_app
    from blipkit.serve.settings import ServeSettings


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'blipkit.serve' has no attribute {name!r}")

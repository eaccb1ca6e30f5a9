"""Keep PySide6 from holding the source text of every module the app imports.

Once shiboken6 is imported, its import hook (``shibokensupport.feature._mod_uses_pyside``) reads each newly
imported module's source with :func:`inspect.getsource`, to see whether it uses PySide6, and
:mod:`linecache` keeps that text for the life of the process. torch and transformers are thousands of
files: measured here, 2,259 files and about 120 MB of resident memory, a fifth of the app's, and the
reading slows the model's start as well. Clearing the cache afterwards does not give the memory back (the
strings are spread over the interpreter's arenas), so nothing is kept in the first place.
"""

from __future__ import annotations

import linecache
from typing import Any


class _Forgetful(dict):
    """A ``linecache.cache`` that keeps only the entry set last: every other lookup reads the file again,
    which only tracebacks and warnings do, rarely.

    Not none at all: where a module has no file on disk (the PyInstaller bundle keeps them in its
    archive) linecache asks the module's loader, stores the answer and reads it straight back; a cache
    that kept nothing failed there with a KeyError, on the bundle's first import after PySide6's.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        self.clear()
        super().__setitem__(key, value)


def keep_no_sources() -> None:
    """Replace the source cache by one that keeps nothing (for the rest of the process)."""
    if not isinstance(linecache.cache, _Forgetful):
        linecache.cache = _Forgetful()

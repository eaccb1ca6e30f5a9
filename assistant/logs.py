"""The app's log file: ``logs/assistant.log`` in the data folder, rotated by size.

The log holds timings, states and errors, never what was on the user's screen: captions, answers and
text read aloud go only through :func:`content`, which writes nothing unless the user turned on
"Debug logging" (``app.debug_log``) to report a problem. Size is bounded: at most ``MAX_BYTES`` a file
and ``BACKUPS`` old files, so a month of use cannot fill a disk.
"""

from __future__ import annotations

import faulthandler
import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from assistant import home

LOG_FILE = "assistant.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
DEBUG_SETTING = "app.debug_log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Where a crash (a segmentation fault in Qt, a driver or a library) leaves every thread's Python stack:
# file names, functions and line numbers, nothing from the screen. Empty unless the app has crashed.
CRASH_FILE = "crash.log"
MAX_CRASH_BYTES = 1_000_000
_crash_stream = None  # kept open: faulthandler writes to its descriptor from the signal handler

# Screen text and captions: a logger of its own, so one switch lets them through or holds them back.
_content = logging.getLogger("assistant.content")
_content.setLevel(logging.CRITICAL + 1)


def log_file() -> Path:
    return home.logs_dir() / LOG_FILE


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """Every file it opens (the first and each rotation's) is readable by the user alone."""

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        os.chmod(self.baseFilename, 0o600)
        return stream


def setup(debug: bool = False, stderr_level: str | None = None, *, max_bytes: int = MAX_BYTES,
          backups: int = BACKUPS) -> Path:
    """Log to the rotating file (INFO and up) and to stderr (``stderr_level``, WARNING by default)."""
    path = log_file()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, RotatingFileHandler) or getattr(handler, "_assistant", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = _PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                               encoding="utf-8", delay=False)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console._assistant = True  # type: ignore[attr-defined]
    console.setFormatter(logging.Formatter(FORMAT))
    level = (stderr_level or "WARNING").upper()
    console.setLevel(getattr(logging, level, logging.WARNING))
    root.addHandler(file_handler)
    root.addHandler(console)
    root.setLevel(min(logging.INFO, console.level))
    set_debug(debug)
    return path


def set_debug(on: bool) -> None:
    """Let screen text and captions into the log (on), or keep them out (off, the default)."""
    _content.setLevel(logging.INFO if on else logging.CRITICAL + 1)


def content(what: str, text: str) -> None:
    """Log screen content (a caption, an answer, text read): written only with debug logging on."""
    _content.info("%s: %s", what, text)


def trace_crashes() -> Path:
    """From now on a crash writes where every thread was to ``logs/crash.log`` (readable by the user
    alone), so a crash can be reported; a file grown past ``MAX_CRASH_BYTES`` is started again."""
    global _crash_stream
    path = home.logs_dir() / CRASH_FILE
    if path.exists() and path.stat().st_size > MAX_CRASH_BYTES:
        path.unlink()
    stream = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", encoding="utf-8")
    faulthandler.enable(stream, all_threads=True)
    if _crash_stream is not None:
        _crash_stream.close()
    _crash_stream = stream
    return path


def last_crash() -> str | None:
    """At start: when the last run crashed (``logs/crash.log`` is not empty), that file becomes
    ``crash.log.1`` (replacing an older one) and the sentence to say is returned; otherwise None."""
    folder = home.logs_dir()
    path = folder / CRASH_FILE
    try:
        if not path.exists() or path.stat().st_size == 0:
            return None
        path.replace(folder / f"{CRASH_FILE}.1")
    except OSError:
        return None
    return (f"The assistant stopped unexpectedly last time. What it was doing is in {CRASH_FILE}.1, in the "
            "logs folder of its data folder, for a problem report.")


def remove_all() -> int:
    """Close the log files and delete them (for "Delete all my data"); the number of files removed."""
    global _crash_stream
    if _crash_stream is not None:
        faulthandler.disable()
        _crash_stream.close()
        _crash_stream = None
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, RotatingFileHandler):
            root.removeHandler(handler)
            handler.close()
    folder = home.home() / "logs"
    removed = 0
    for file in [*folder.glob(f"{LOG_FILE}*"), *folder.glob(f"{CRASH_FILE}*")] if folder.is_dir() else []:
        file.unlink(missing_ok=True)
        removed += 1
    return removed

"""The engine's imports, begun at launch in a thread of their own while Qt puts up the tray.

torch and transformers are most of the time from launch to "Ready." (issue #27). Started after the tray
they ran alone; started at launch they overlap the tray's own start. The worker waits for them with
:func:`wait` before it loads the model, so no two threads ever import the engine at once, and calls
:func:`finish` when the model is loaded (or failed to load). Only the app calls :func:`start`: everywhere
else (tests, the command line) :func:`wait` and :func:`finish` do nothing.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading

log = logging.getLogger(__name__)

# What loading any model runs through, in the order it needs them.
ENGINE_MODULES = (
    "assistant.vision.blip",
    "assistant.vision.runtime.fast.loading",
    "assistant.vision.models.builtin.modeling",
)

# Installed with the training extras only (accelerate for training, scipy with the data tools), yet
# imported by transformers whenever they are there, for what the app never does: spreading a model over
# devices, and object-detection losses. Marked absent, a development install starts the way a user's
# does, which has neither (measured: about 0.2 s of the start).
NOT_AT_RUN_TIME = ("scipy", "accelerate")

_thread: threading.Thread | None = None
_collector_paused = False


def start() -> None:
    """Begin importing the engine in the background (once per process)."""
    global _thread, _collector_paused
    if _thread is not None:
        return
    for name in NOT_AT_RUN_TIME:
        sys.modules.setdefault(name, None)  # None: "import scipy" fails, as where it is not installed
    # The imports make some hundreds of thousands of objects that live as long as the app; the cyclic
    # collector would walk them again and again while they are made (measured: 0.5 s of 3.8 s).
    if gc.isenabled():
        gc.disable()
        _collector_paused = True
    _thread = threading.Thread(target=_import, name="engine-imports", daemon=True)
    _thread.start()


def _import() -> None:
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the worker imports it again, and says what went wrong in words
            log.exception("importing %s in the background failed", name)
            return


def wait() -> None:
    """Until the background imports are done (at once where none were started)."""
    if _thread is not None:
        _thread.join()


def finish() -> None:
    """The model is loaded (or could not be): the collector runs again, from now on."""
    global _collector_paused
    if not _collector_paused:
        return
    _collector_paused = False
    # What start-up made stays for the life of the app: frozen, later collections skip it instead of
    # walking it each time. Not collected first: that costs 0.3 s before "Ready." to free some 9,000
    # objects of the imports (no resident memory measured back).
    gc.freeze()
    gc.enable()

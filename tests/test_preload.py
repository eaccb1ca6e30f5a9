"""The engine's imports begun at launch (assistant.vision.runtime.preload), in a process of their own:
what they change (the collector, packages marked absent) is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

STARTED = r"""
import gc, json, sys
from assistant.vision.runtime import preload
preload.start()
paused = not gc.isenabled()
preload.wait()
imported = [m in sys.modules for m in ("torch", "transformers", *preload.ENGINE_MODULES)]
try:
    import scipy  # noqa: F401
    scipy_absent = False
except ImportError:
    scipy_absent = True
paused_after_imports = not gc.isenabled()
preload.finish()
print(json.dumps({"paused": paused, "paused_after_imports": paused_after_imports, "imported": imported,
                  "scipy_absent": scipy_absent, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""

NOT_STARTED = r"""
import gc, json
from assistant.vision.runtime import preload
preload.wait()
preload.finish()
print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_started_the_engine_is_imported_with_the_collector_paused_until_the_model_is_in() -> None:
    seen = _run(STARTED)
    assert all(seen["imported"]), seen
    assert seen["paused"] and seen["paused_after_imports"]
    assert seen["scipy_absent"], "transformers would import scipy (0.2 s) for what the app never does"
    assert seen["enabled"] and seen["frozen"] > 100_000, seen  # the imports' objects, frozen, not walked


def test_not_started_waiting_and_finishing_change_nothing() -> None:
    """Tests and the command line load models without it: no frozen objects, the collector untouched."""
    assert _run(NOT_STARTED) == {"enabled": True, "frozen": 0}

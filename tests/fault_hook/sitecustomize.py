"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests/test_reliability_faults.py):
breaks one part of the real app the way a user's machine breaks it, named in BLIP_ASSISTANT_FAULTS
(comma-separated):

- ``no-espeak``: the espeak-ng library cannot be loaded (pyttsx3 finds it missing, as on a machine
  without the package);
- ``capture-denied``: the OS refuses screen capture (mss cannot open the display: permission denied);
- ``slow-model``: every description takes 2 s more, as on an old laptop with a large model (a Stop
  pressed meanwhile lands while the model runs).
"""

import os

_FAULTS = set(filter(None, os.environ.get("BLIP_ASSISTANT_FAULTS", "").split(",")))

if "no-espeak" in _FAULTS:
    import ctypes

    _real_load = ctypes.cdll.LoadLibrary

    def _load(name, *args, **kwargs):
        if "espeak" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return _real_load(name, *args, **kwargs)

    ctypes.cdll.LoadLibrary = _load

if "capture-denied" in _FAULTS:
    import mss
    import mss.base

    class _Denied(mss.base.MSS):
        def __init__(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", os.environ.get("DISPLAY", ""))

    mss.MSS = _Denied

if "slow-model" in _FAULTS:
    import time

    from assistant.describe import Describer  # Qt-free and torch-free until load()

    _real_describe = Describer.describe

    def _slow_describe(self, *args, **kwargs):
        time.sleep(2.0)
        return _real_describe(self, *args, **kwargs)

    Describer.describe = _slow_describe

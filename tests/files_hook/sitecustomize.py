"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests/test_reliability_privacy.py):
records every file a process opens for writing (PEP 578 ``open`` audit events), so a test can show that
no screenshot was written anywhere, wherever the code would have put it."""

import os
import sys

_LOG = os.environ.get("FILES_WRITTEN_LOG")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _hook(event: str, args: tuple) -> None:
    if event != "open":
        return
    path, mode, flags = args
    if isinstance(path, int) or path is None:
        return
    writing = any(c in (mode or "") for c in "wax+") if mode else bool((flags or 0) & _WRITE_FLAGS)
    if not writing:
        return
    path = os.fsdecode(path)
    if path == _LOG:
        return
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\t{' '.join(sys.argv[:2])}\t{os.path.abspath(path)}\n")


if _LOG:
    sys.addaudithook(_hook)

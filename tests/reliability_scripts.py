"""The programs under ``tests/reliability/`` (run on their own for the long figures), loaded as modules by the
tests that run parts of them: they are not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).resolve().parent / "reliability"


def load(name: str) -> ModuleType:
    """``tests/reliability/NAME.py``, loaded once per process."""
    module_name = f"reliability_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # their dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module

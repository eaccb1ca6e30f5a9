"""The source cache that keeps (nearly) nothing, which the app puts in place before PySide6's import hook
reads every module's source (assistant/app/source_cache.py)."""

from __future__ import annotations

import inspect
import linecache
import types

import pytest

from assistant.app import source_cache


@pytest.fixture
def forgetful(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linecache, "cache", source_cache._Forgetful())


def test_sources_of_many_modules_are_not_kept(forgetful: None) -> None:
    for module in (inspect, linecache, types, source_cache):
        assert "import" in inspect.getsource(module)
    assert len(linecache.cache) <= 1


def test_a_module_with_no_file_on_disk_is_read_through_its_loader(forgetful: None) -> None:
    """As in the bundle: linecache asks the loader, stores the lines and reads them back from the cache."""

    class ArchiveLoader:
        def get_source(self, name: str) -> str:
            return "from PySide6 import QtCore\nvalue = 1\n"

    lines = linecache.getlines("/nowhere/in/the/archive/frozen_module.py",
                               {"__name__": "frozen_module", "__loader__": ArchiveLoader()})
    assert lines == ["from PySide6 import QtCore\n", "value = 1\n"]
    assert len(linecache.cache) <= 1

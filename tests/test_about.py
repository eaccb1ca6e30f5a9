"""One version number: pyproject.toml's, in assistant.__version__ (installed, bundled or from a bare
source tree) and in the About box, which a screen-reader user can read and leave by keyboard."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtCore import Qt

import assistant

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_version_is_pyprojects() -> None:
    assert assistant.__version__ == VERSION


def test_without_metadata_the_version_comes_from_the_bundled_file_or_the_source_tree(tmp_path: Path) -> None:
    # A copy of the package with no installed distribution behind it: first the source tree's pyproject,
    # then the VERSION file a bundle carries (packaging/bundle_version.py writes it).
    tree = tmp_path / "tree"
    (tree / "assistant").mkdir(parents=True)
    (tree / "assistant" / "__init__.py").write_text((ROOT / "assistant" / "__init__.py").read_text())
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.8.7"\n')
    code = ("import importlib.metadata as m\n"
            "def nope(name): raise m.PackageNotFoundError(name)\n"
            "m.version = nope\n"
            "import assistant; print(assistant.__version__)")

    def version() -> str:
        return subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": str(tree)}).stdout.strip()

    assert version() == "9.8.7"
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        from bundle_version import write_version_file
    finally:
        sys.path.pop(0)
    write_version_file(tree / "assistant", "1.2.3")
    assert version() == "1.2.3"


def test_about_box_shows_the_version_and_is_keyboard_reachable(qtbot, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    from assistant.app.about_window import AboutWindow

    window = AboutWindow("builtin")
    qtbot.addWidget(window)
    window.show_now()
    qtbot.waitExposed(window)
    text = window.text.toPlainText()
    assert f"version {VERSION}" in text and "Model: builtin." in text and str(tmp_path / "home") in text
    assert window.accessibleName() == "About BLIP Assistant" == window.windowTitle()
    assert window.focusWidget() is window.text  # a screen reader starts reading the facts at once
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isVisible()

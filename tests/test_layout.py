"""The repository's shape: the design card's top level, one installable package, resources found
through one locator, and the boundaries between the engine and the Qt side."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_is_the_design_cards() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    top = {line.split("/", 1)[0] for line in tracked.splitlines()}
    visible = {name for name in top if not name.startswith(".")}
    assert visible <= {"pyproject.toml", "README.md", "assistant", "resources", "tests", "packaging"}, visible


def test_every_package_is_listed_for_installation() -> None:
    """pyproject lists its packages by hand (resources/ is mapped onto assistant_resources); a new
    package folder missing from that list would be left out of wheels and bundles."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "assistant").rglob("__init__.py")
    }
    assert on_disk | {"assistant_resources"} == listed
    # every folder holding modules is a package (a namespace folder would be skipped by the list)
    for folder in {p.parent for p in (ROOT / "assistant").rglob("*.py")}:
        assert (folder / "__init__.py").exists(), folder


def test_resources_are_found_and_hold_the_builtin_model() -> None:
    from assistant import resources

    model = resources.builtin_model_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "recipe.yaml"):
        assert (model / name).is_file(), name
    assert (resources.example_images_dir() / "chelsea.jpg").is_file()


def test_resource_locator_prefers_a_pyinstaller_bundle(tmp_path: Path) -> None:
    (tmp_path / "resources" / "models").mkdir(parents=True)
    code = (
        "import sys; sys._MEIPASS = sys.argv[1]\n"
        "from assistant import resources; print(resources.root())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == str(tmp_path / "resources")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", ["vision", "training", "datasets", "evaluation"])
def test_the_engine_side_has_no_qt(folder: str) -> None:
    for path in (ROOT / "assistant" / folder).rglob("*.py"):
        assert not _imports(path) & {"PySide6", "shiboken6"}, path


def test_light_modules_start_without_torch_or_qt() -> None:
    """The command, settings and action registry load without torch, transformers or Qt: the trigger
    command and the tray must come up before the model does."""
    code = (
        "import sys\n"
        "import assistant, assistant.cli, assistant.actions, assistant.settings, assistant.resources\n"
        "import assistant.vision, assistant.app\n"
        "print(sorted(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_qt_side_imports_no_torch_outside_the_worker() -> None:
    """Only the worker owns the model; every other Qt module stays light (the tray must come up fast)."""
    for path in (ROOT / "assistant" / "app").rglob("*.py"):
        if path.name == "worker.py":
            continue
        assert not _imports(path) & {"torch", "transformers"}, path

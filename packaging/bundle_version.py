"""The version file that goes into a bundle: the one version number, from pyproject.toml.

A bundle carries the distribution's metadata too (``copy_metadata``), which ``assistant.__version__``
reads first; this file is the fallback when a packager drops the metadata.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_NAME = "VERSION"


def project_version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def write_version_file(folder: Path, version: str | None = None) -> Path:
    """``folder/VERSION`` holding the version; the spec copies it into the bundle's ``assistant/``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    path.write_text((version or project_version()) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(project_version())

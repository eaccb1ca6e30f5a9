"""`blip-assistant describe` and the no-display start, run as a user runs them: the installed command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = Path(sys.executable).parent / "blip-assistant"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    if not COMMAND.exists():
        pytest.skip("no blip-assistant console script next to this Python")
    full = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=300, env=full,
                          check=False)


def test_describe_json_on_the_builtin_model_with_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((ROOT / "resources" / "images" / "coffee.jpg").read_bytes()[:300])  # truncated
    good = ROOT / "resources" / "images" / "chelsea.jpg"
    result = _run(["describe", str(good), str(broken), str(tmp_path / "missing.png"), "--json"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(good), str(broken), str(tmp_path / "missing.png")]
    ok, bad, missing = rows
    assert ok["caption"] and 0 < ok["confidence"] <= 1 and ok["text"][0].isupper()
    assert "error" not in ok
    assert bad["caption"] is None and bad["error_code"] == "image_decode_error"
    assert "no such file" in missing["error"]
    assert "broken.jpg" in result.stderr and "missing.png" in result.stderr


def test_a_black_image_is_said_to_be_black_not_described(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (1920, 1080)).save(tmp_path / "curtain.png")
    result = _run(["describe", str(tmp_path / "curtain.png"), "--json"])
    row = json.loads(result.stdout)
    assert result.returncode == 0 and row["caption"] is None
    assert row["text"].startswith("The image is completely black")


def test_start_without_a_display_describes_the_example_and_returns(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([str(COMMAND)], capture_output=True, text=True, timeout=300, check=False,
                            env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                 "BLIP_ASSISTANT_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "No desktop" in result.stdout and "chelsea.jpg: " in result.stdout


def test_model_commands_are_reachable() -> None:
    result = _run(["model", "--help"])
    assert result.returncode == 0, result.stderr
    assert "pretrain" in result.stdout and "eval" in result.stdout


def test_version_is_the_pyproject_one() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(["--version"]).stdout.strip() == version


def test_the_readme_set_up_and_test_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    for command in ("bash packaging/setup.sh", "bash packaging/test.sh"):
        assert command in ci and command in readme
    assert shutil.which("bash")

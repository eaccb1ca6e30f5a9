"""Training commands re-execute themselves on jemalloc when the machine has it (runtime.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.training.allocator import ALLOCATOR_ENV, allocator_library, preload_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux's")


def _loaded_library(name: str) -> str:
    """The path of a shared library this process has loaded: harmless to preload again."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if Path(path).name.startswith(name) and ".so" in path:
            return path
    pytest.skip(f"{name} is not mapped")


def test_library_choice_follows_the_environment(tmp_path: Path) -> None:
    lib = _loaded_library("libm")
    assert allocator_library({ALLOCATOR_ENV: lib}) == lib
    assert allocator_library({ALLOCATOR_ENV: "system"}) is None
    assert allocator_library({ALLOCATOR_ENV: str(tmp_path / "missing.so")}) is None
    assert allocator_library({ALLOCATOR_ENV: lib, "LD_PRELOAD": f"/x.so:{lib}"}) is None  # already there
    env = preload_env({"LD_PRELOAD": "/other.so", "KEEP": "1"}, lib)
    assert env["LD_PRELOAD"] == f"{lib}:/other.so" and env["KEEP"] == "1"
    # jemalloc keeps its default page decay (turned off, a long run grew without bound); a user's own
    # MALLOC_CONF passes through untouched
    assert "MALLOC_CONF" not in env
    assert preload_env({"MALLOC_CONF": "narenas:1"}, lib)["MALLOC_CONF"] == "narenas:1"
    assert allocator_library(env) is None  # the re-executed process does not re-execute again


def _command(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "blip-assistant"
    if not script.exists():
        pytest.skip("no blip-assistant console script next to this Python")
    ours = (ALLOCATOR_ENV, "BLIP_ASSISTANT_ALLOCATOR_PRELOADED")
    full = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(
        [str(script), *args], env={**full, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def test_training_commands_reexecute_with_the_library_preloaded() -> None:
    lib = _loaded_library("libm")
    done = _command(["model", "pretrain", "--help"], **{ALLOCATOR_ENV: lib})
    assert done.returncode == 0, done.stderr
    assert f"training on jemalloc ({lib})" in done.stderr and "Usage" in done.stdout
    off = _command(["model", "pretrain", "--help"], **{ALLOCATOR_ENV: "system"})
    assert off.returncode == 0 and "jemalloc" not in off.stderr
    other = _command(["model", "eval", "--help"], **{ALLOCATOR_ENV: lib})
    assert other.returncode == 0 and "jemalloc" not in other.stderr

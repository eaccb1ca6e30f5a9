"""The docs that are generated from the code are current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def _python_blocks(markdown: str) -> list[str]:
    blocks, inside, current = [], False, []
    for line in markdown.splitlines():
        if line.strip() == "```python":
            inside, current = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def test_api_examples_run(tiny_models, monkeypatch) -> None:
    from blipkit.runtime.resolve import BUILTIN_ENV

    # the tiny built-in model stands in for the shipped one, so the examples test the API, not the weights
    monkeypatch.setenv(BUILTIN_ENV, str(tiny_models["builtin"]))
    monkeypatch.chdir(REPO)
    blocks = _python_blocks((REPO / "docs" / "api.md").read_text())
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), {})

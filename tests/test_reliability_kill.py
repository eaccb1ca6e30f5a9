"""Nothing lost after kill -9 (issue #28, item 4): ``tests/reliability/kill_restart.py`` kills the
corrections writer, a personalization run and the settings writer at random moments, then checks what a
restart finds. Its figures for 20 rounds are in tests/reliability/README.md."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "reliability"))

import kill_restart


def _check(figures: kill_restart.Figures, rounds: int) -> None:
    assert figures.rounds == rounds
    assert kill_restart.failures(figures) == 0, asdict(figures)
    assert figures.corrections_confirmed + figures.settings_confirmed > 0, asdict(figures)  # not vacuous


def test_two_kills_lose_nothing(tmp_path: Path, tiny_models) -> None:
    home = tmp_path / "home"
    kill_restart.prepare(home, tiny_models["builtin"])
    figures = kill_restart.run(2, seed=1, home=home, model=tiny_models["builtin"], max_kill_s=3.0, log=False)
    _check(figures, 2)


@pytest.mark.slow
def test_twenty_kills_at_random_moments_lose_nothing(tmp_path: Path, tiny_models) -> None:
    home = tmp_path / "home"
    kill_restart.prepare(home, tiny_models["builtin"])
    figures = kill_restart.run(20, seed=0, home=home, model=tiny_models["builtin"])
    print(asdict(figures))
    _check(figures, 20)
    assert figures.corrections_confirmed > 100 and figures.settings_confirmed > 100, asdict(figures)
    # the kills landed in the middle of personalization, not only before it began
    assert figures.personal_runs_killed >= 5 and len(figures.personal_kill_phases) >= 2, asdict(figures)

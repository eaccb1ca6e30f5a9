"""Crash safety: ``blipkit index add``, ``blipkit job caption --engine local`` and ``blipkit caption --out
x.jsonl --resume`` killed with SIGKILL at random moments, then resumed, end equal to an uninterrupted run.

The experiment is scripts/reliability/kill_resume.py (20 kills per target, figures in docs/reliability.md);
here it runs with 3 kills per target, each run forked from one zygote that imported torch once. Two
deterministic tests pin down the JSONL resume of ``blipkit caption`` after a torn write and with failed
images.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _load_script():  # type: ignore[no-untyped-def]
    name = "reliability_kill_resume"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "reliability" / "kill_resume.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


kr = _load_script()
N_IMAGES = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from blipkit.testing import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("kill_resume")
    photos = root / "photos"
    kr.make_photos(photos, N_IMAGES)
    return {"root": root, "model": make_tiny_checkpoint("builtin", root / "model"), "photos": photos}


@pytest.fixture(scope="module")
def launcher() -> Iterator[Any]:
    zygote = kr.ForkLauncher()
    try:
        yield zygote
    finally:
        zygote.close()


@pytest.mark.parametrize("target", kr.TARGETS)
def test_sigkill_then_resume_equals_an_uninterrupted_run(target: str, world: dict[str, Path], launcher: Any,
                                                         tmp_path: Path) -> None:
    outcome = kr.run_experiment(kr.make_target(target, world["photos"], world["model"]), launcher, tmp_path,
                                kills=3, images=N_IMAGES, seed=11)
    assert outcome.ok, "\n".join(outcome.problems)
    assert outcome.kills == 3
    # The kills interrupted real work: at least one left a partial output behind.
    assert any(0 < k.rows_after < N_IMAGES + len(kr.BAD_FILES) for k in outcome.kill_log), outcome.kill_log


def test_experiment_detects_a_lost_row(world: dict[str, Path]) -> None:
    """The comparison the experiment relies on does fail when a row is lost, duplicated or changed."""
    reference = {"a": {"image": "a", "caption": "x"}, "b": {"image": "b", "caption": "y"}}
    assert kr.compare({"a": reference["a"]}, reference, partial=True) == []
    assert kr.compare({"a": reference["a"]}, reference, partial=False)
    assert kr.compare({**reference, "b": {"image": "b", "caption": "z"}}, reference, partial=False)
    with pytest.raises(kr.CheckFailed, match="duplicate"):
        kr._collect({}, [{"image": "a"}, {"image": "a"}], "image", "row")
    target = kr.CaptionTarget(world["photos"], world["model"])
    torn = world["root"] / "torn.jsonl"
    torn.write_text('{"image": "a", "caption": "x"}\n{"image": "b", "capt{"image": "c", "caption": "z"}\n'
                    '{"image": "d", "caption": "w"}\n')
    with pytest.raises(kr.CheckFailed, match="not JSON"):
        target.snapshot(torn)


# --- blipkit caption --out x.jsonl --resume: deterministic cases -------------------------------------


def _caption(world: dict[str, Path], out: Path, *, resume: bool = True) -> int:
    from blipkit.cli.main import app

    args = ["caption", str(world["photos"]), "-m", str(world["model"]), "--out", str(out),
            "--batch-size", "1", "--decoding", "greedy", "--max-new-tokens", "5"]
    result = CliRunner().invoke(app, [*args, "--resume"] if resume else args)
    assert result.exit_code in (0, 2), result.output
    return result.exit_code


def _rows(out: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return rows, bad


def test_caption_resume_after_a_torn_last_line_keeps_every_image(world: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    """A run that died in the middle of writing a row (power loss, a full disk, a write larger than the
    buffer) leaves a last line without its newline; the resumed run must not glue its first row onto it."""
    import shutil

    photos = tmp_path / "photos"  # good images only: the torn row's image is the first one redone
    photos.mkdir()
    for path in sorted(world["photos"].glob("img*.png"))[:6]:
        shutil.copy(path, photos)
    out = tmp_path / "captions.jsonl"
    assert _caption({**world, "photos": photos}, out, resume=False) == 0
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 6
    # Three rows whole and half of the fourth: the crash happened mid-write.
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2], encoding="utf-8")
    assert _caption({**world, "photos": photos}, out) == 0
    rows, unparsable = _rows(out)
    images = Counter(r["image"] for r in rows)
    wanted = {json.loads(line)["image"] for line in lines}
    assert unparsable <= 1, f"{unparsable} unparsable lines"
    assert set(images) == wanted, f"lost: {sorted(wanted - set(images))}"
    assert max(images.values()) == 1


def test_caption_resume_keeps_one_row_per_failed_image(world: dict[str, Path], tmp_path: Path) -> None:
    """A failed image is retried by --resume (a fetch may succeed the next time), but the output should
    still hold one row per image: the retry's row, not one more error row per run."""
    out = tmp_path / "captions.jsonl"
    assert _caption(world, out) == 2  # the broken files fail
    assert _caption(world, out) == 2
    rows, unparsable = _rows(out)
    assert unparsable == 0
    per_image = Counter(r["image"] for r in rows)
    assert len(per_image) == N_IMAGES + len(kr.BAD_FILES)
    repeated = {image: n for image, n in per_image.items() if n > 1}
    assert not repeated, f"images with more than one row after two runs: {repeated}"

"""The engine benchmark suite (tests/benchmarks/): its bookkeeping, its models, a --quick run end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from benchmarks import summary  # noqa: E402
from benchmarks.worker import parse_plan  # noqa: E402

ROOT = TESTS.parent  # the repository


def _report(kind: str, path: str, rnd: int, seconds: float, **extra: object) -> dict:
    tasks = {
        "caption_greedy": {
            "items": 4,
            "seconds": [seconds, seconds * 1.5],
            "flops": 8e9,
            "outputs": {"tokens": [[1, 5, 6, 7]] * 4, "texts": ["a"] * 4},
        },
        "itc_image": {
            "items": 4,
            "seconds": [seconds / 4],
            "flops": None,
            "outputs": {"vectors": [[1.0, 0.0]] * 4},
        },
    }
    return {
        "kind": kind,
        "path": path,
        "round": rnd,
        "peak_rss_mb": 1000.0 + (rnd if isinstance(rnd, int) else 0),
        "tasks": tasks,
        **extra,
    }


def test_ratios_are_taken_within_each_round() -> None:
    reports = [
        _report("caption", "transformers", 0, 4.0),
        _report("caption", "fast", 0, 1.0),
        _report("caption", "transformers", 1, 8.0),
        _report("caption", "fast", 1, 4.0),
    ]
    rows = {(r["task"], r["path"]): r for r in summary.rows(reports)}
    fast = rows[("caption_greedy", "fast")]
    assert fast["speedups"] == [4.0, 2.0]  # a slow round slows both paths alike
    assert fast["speedup"] == 3.0
    assert fast["items_per_s"] == pytest.approx((4 / 1 + 4 / 4) / 2)
    assert fast["gflops"] == pytest.approx(8.0 / 2.5)  # FLOPs over the median of the best times
    assert math.isnan(rows[("itc_image", "fast")]["gflops"])  # no count, no figure
    assert fast["peak_rss_mb"] == 1001.0  # the worst round
    assert rows[("caption_greedy", "transformers")]["speedup"] == 1.0


def test_agreement_compares_each_path_with_transformers() -> None:
    base = _report(
        "caption", "transformers", 0, 4.0, agreement={"images": 2, "tokens": [[1, 5, 6], [1, 7, 8]]}
    )
    fast = _report(
        "caption",
        "fast",
        0,
        1.0,
        agreement={"images": 2, "tokens": [[1, 5, 6], [1, 7, 9]], "teacher_forced": 0.9},
    )
    fast["tasks"]["caption_greedy"]["outputs"]["tokens"] = [[1, 5, 6, 0]] * 4
    fast["tasks"]["itc_image"]["outputs"]["vectors"] = [[0.6, 0.8]] * 4
    (row,) = summary.agreement([base, fast])
    assert row["greedy_tokens"] == 0.75  # 3 of the 4 generated positions
    assert row["greedy_teacher_forced"] == 0.9
    assert row["greedy_tokens_timed"] == pytest.approx(2 / 3)
    assert row["itc_image_min_cosine"] == pytest.approx(0.6)


def test_position_agreement_skips_the_start_token() -> None:
    assert summary.position_agreement([[9, 1, 2]], [[8, 1, 3]]) == 0.5


def test_targets_and_markdown() -> None:
    reports = [
        _report("caption", "transformers", 0, 4.0),
        _report("caption", "fast", 0, 1.0),
        _report("itm", "transformers", 0, 4.0),
        _report("itm", "fast", 0, 2.0),
    ]
    for r in reports:
        r["tasks"]["caption_beam3"] = r["tasks"]["caption_greedy"]
    table, agree = summary.rows(reports), summary.agreement(reports)
    targets = summary.targets(table, agree)
    assert targets["values"]["caption_greedy_speedup"] == 4.0
    assert targets["values"]["itc_image_speedup"] == 2.0
    assert targets["met"]["caption_speedup"] and targets["met"]["itc_image_speedup"]
    assert targets["met"]["peak_rss_mb"]
    result = {
        "mode": "full",
        "date": "today",
        "rounds": 1,
        "table": table,
        "agreement": agree,
        "targets": targets,
        "peak_gflops": {"float32": 100.0, "bfloat16": 800.0},
        "inputs": {"images": 4},
        "machine": {"cpu": "cpu", "threads": 1, "torch": "t", "transformers": "x"},
    }
    text = summary.markdown(result)
    assert "| BLIP-base caption | caption greedy (20 tok) | fast | 4.00 | 4.00 |" in text
    assert "100.0 GFLOP/s fp32" in text and "met" in text


def test_fast_variant_names_parse_to_plans() -> None:
    assert parse_plan("fast:image=bf16,text=int8") == {"image": "bf16", "text": "int8"}
    assert parse_plan("fast:cross=shared,sdpa=0,loader=apply") == {
        "cross": "shared",
        "sdpa": False,
        "loader": "apply",
    }
    assert parse_plan("fast") == {}


def test_benchmark_checkpoints_are_real_architectures_and_reused(tmp_path: Path) -> None:
    from assistant.vision.runtime.checkpoint import read_architecture
    from benchmarks.checkpoints import blip_config_kwargs, build_checkpoint

    base = blip_config_kwargs("base")
    assert base["vision_config"] == {"initializer_range": 0.02}  # otherwise BlipConfig()'s defaults
    from transformers.models.blip import BlipConfig

    large = BlipConfig(**blip_config_kwargs("large"))  # Salesforce/blip-image-captioning-large's shape
    vision = large.vision_config
    shape = (vision.hidden_size, vision.num_hidden_layers, vision.image_size, vision.patch_size)
    assert shape == (1024, 24, 384, 16)
    assert (large.text_config.hidden_size, large.text_config.encoder_hidden_size) == (768, 1024)
    folder = build_checkpoint("caption", tmp_path / "caption", size="quick")
    assert read_architecture(folder) == "BlipForConditionalGeneration"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_checkpoint("caption", folder, size="quick") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer.get("bos_token") == "[DEC]"


@pytest.mark.slow
def test_quick_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """`benchmarks/run.py --quick`: every path of every model measured and reported (no timing asserted)."""
    out = tmp_path / "results" / "latest"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "benchmarks" / "run.py"),
            "--quick",
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    measured = {(r["model"], r["task"], r["path"]) for r in result["table"]}
    for kind, tasks in (
        ("caption", ["caption_greedy", "caption_beam3"]),
        ("itm", ["itc_image", "itc_text", "itm"]),
        ("vqa", ["vqa"]),
        ("builtin", ["caption_greedy", "itc_image", "vqa"]),
    ):
        for task in tasks:
            for path in ("transformers", "float32", "fast"):
                assert (kind, task, path) in measured
    assert all(r["items_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in result["table"])
    assert result["peak_gflops"]["float32"] > 0
    default = next(a for a in result["agreement"] if (a["model"], a["path"]) == ("caption", "float32"))
    assert default["greedy_tokens"] == 1.0  # blipkit's float32 path is transformers' computation
    assert "| BLIP-base caption |" in out.with_suffix(".md").read_text()


def test_quality_guard_compares_and_gates() -> None:
    from benchmarks.quality_guard import compare, markdown, parse_args

    args = parse_args(["--model", "m", "--max-cider-drop", "2", "--max-r1-drop", "1"])
    default = {
        "caption": {"CIDEr": 50.0, "BLEU-4": 20.0, "n_images": 3},
        "captions": ["a", "b", "c"],
        "retrieval": {"r1_mean": 40.0},
        "seconds": 10.0,
    }
    fast = {
        "caption": {"CIDEr": 49.0, "BLEU-4": 21.0, "n_images": 3},
        "captions": ["a", "b", "x"],
        "retrieval": {"r1_mean": 38.5},
        "seconds": 4.0,
        "plan": {"image": "bf16"},
    }
    result = compare(default, fast, args)
    assert result["caption_delta"]["CIDEr"] == -1.0 and result["captions_identical"] == pytest.approx(2 / 3)
    assert result["checks"]["cider"]["ok"] and not result["checks"]["r1_mean"]["ok"]
    assert not result["ok"]  # R@1 fell by 1.5 points, 1 allowed
    text = markdown(
        {
            "model": "m",
            "data": "d",
            "split": "test",
            "images": 3,
            "float32": default,
            "fast": fast,
            "comparison": result,
        }
    )
    assert "| CIDEr | 50.00 | 49.00 | -1.00 |" in text and "FAILED" in text


@pytest.mark.slow
def test_quality_guard_runs_on_flickr8k(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from benchmarks.quality_guard import DEFAULT_DATA, main

    if not DEFAULT_DATA.is_file():
        pytest.skip("Flickr8k is not in the shared data folder")
    out = tmp_path / "guard"
    code = main(
        [
            "--model",
            str(tiny_models["builtin"]),
            "--limit",
            "6",
            "--out",
            str(out),
            "--max-cider-drop",
            "100",
            "--max-r1-drop",
            "100",
        ]
    )
    report = json.loads(out.with_suffix(".json").read_text())
    assert code == 0 and report["images"] == 6
    assert {"CIDEr", "BLEU-4"} <= report["float32"]["caption"].keys() <= report["fast"]["caption"].keys()
    assert 0 <= report["comparison"]["captions_identical"] <= 1


def test_ablation_rows_compare_each_variant_with_the_fast_run_beside_it() -> None:
    base = _report(
        "caption", "transformers", "reference", 4.0, agreement={"images": 1, "tokens": [[1, 5, 6, 7, 8]]}
    )
    fast = _report("caption", "fast", "ablation-0", 1.0)
    slow = _report(
        "caption",
        "fast:text=int8",
        "ablation-0",
        2.0,
        agreement={"images": 1, "tokens": [[1, 5, 6, 9, 9]], "teacher_forced": 0.75},
    )
    other_fast = _report("caption", "fast", "ablation-1", 4.0)  # a busier minute: no effect on pair 0
    rows = {(r["variant"], r["task"]): r for r in summary.ablation([base, fast, slow, other_fast])}
    row = rows[("fast:text=int8", "caption_greedy")]
    assert row["vs_fast"] == 0.5
    assert row["greedy_tokens"] == 0.5 and row["greedy_teacher_forced"] == 0.75
    assert rows[("fast:text=int8", "itc_image")]["vs_fast"] == 0.5
    assert len(rows) == 2  # pair 1 has no variant

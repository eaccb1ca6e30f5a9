"""The model commands through typer's CliRunner: finetune, eval and pretrain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from assistant import vision
from assistant.datasets import load_caption_dataset
from assistant.training.cli import parse_overrides, register
from assistant.training.toy_data import make_caption_dataset, make_vqa_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-training")


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["builtin"]


@pytest.fixture(scope="module")
def captions(root: Path) -> Path:
    return make_caption_dataset(root / "captions", splits={"train": 4, "val": 2, "test": 3})


def _ok(app: typer.Typer, args: list[str]) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_finetune_caption_then_load(app: typer.Typer, model: Path, captions: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    text = _ok(
        app,
        [
            "finetune",
            "caption",
            "--data",
            captions,
            "--val-split",
            "val",
            "--model",
            model,
            "--output",
            out,
            "--max-steps",
            2,
            "--batch-size",
            4,
            "--save-steps",
            2,
            "--no-progress",
        ],
    )
    assert "fine-tuned model saved to" in text and "best CIDEr" in text
    assert (
        vision.load(out)
        .caption(load_caption_dataset(captions, split="test")[0].image, max_new_tokens=4)[0]
        .ok
    )
    # --resume with nothing left to do reloads the last checkpoint and ends at the same step
    again = _ok(
        app,
        [
            "finetune",
            "caption",
            "--data",
            captions,
            "--model",
            model,
            "--output",
            out,
            "--max-steps",
            2,
            "--batch-size",
            4,
            "--save-steps",
            2,
            "--resume",
            "--no-progress",
        ],
    )
    assert "after 2 steps" in again


def test_finetune_reports_bad_data_cleanly(app: typer.Typer, model: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "finetune",
            "vqa",
            "--data",
            str(tmp_path / "nope.jsonl"),
            "--model",
            str(model),
            "--output",
            str(tmp_path / "out"),
            "--split",
            "all",
        ],
    )
    assert result.exit_code == 1 and "error:" in result.output
    clash = runner.invoke(app, ["finetune", "vqa", "--data", "x", "--output", "y", "--bf16", "--fp16"])
    assert clash.exit_code == 1


def test_eval_caption_writes_report_and_predictions(
    app: typer.Typer, model: Path, captions: Path, tmp_path: Path
) -> None:
    text = _ok(
        app,
        [
            "eval",
            "caption",
            "--data",
            captions,
            "--model",
            model,
            "--limit",
            2,
            "--decoding",
            "greedy",
            "--max-new-tokens",
            5,
            "--no-meteor",
            "--out-dir",
            tmp_path,
            "--no-progress",
        ],
    )
    assert "CIDEr" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"] == "caption" and report["split"] == "test" and report["metrics"]["n_images"] == 2
    assert report["extra"]["decoding"]["decoding"] == "greedy"
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("caption" in row for row in rows)


def test_eval_vqa_rank_uses_the_train_answers(app: typer.Typer, model: Path, tmp_path: Path) -> None:
    train = make_vqa_dataset(tmp_path / "v", 3, split="train", name="train.jsonl")
    test = make_vqa_dataset(tmp_path / "v", 2, split="test", seed=1, name="test.jsonl")
    text = _ok(
        app,
        [
            "eval",
            "vqa",
            "--data",
            test,
            "--model",
            model,
            "--rank",
            "--answers-from",
            train,
            "--json",
            "--no-progress",
        ],
    )
    line = json.loads(text.strip().splitlines()[-1])
    assert line["task"] == "vqa" and line["metrics"]["mode"].startswith("rank over")
    choices = tmp_path / "choices.txt"
    choices.write_text("red\nblue\n")
    out = tmp_path / "out"
    _ok(
        app,
        [
            "eval",
            "vqa",
            "--data",
            test,
            "--model",
            model,
            "--choices-file",
            choices,
            "--out-dir",
            out,
            "--no-progress",
        ],
    )
    answers = {json.loads(row)["answer"] for row in (out / "predictions.jsonl").read_text().splitlines()}
    assert answers <= {"red", "blue"}


def test_eval_retrieval_json(app: typer.Typer, model: Path, captions: Path) -> None:
    text = _ok(
        app,
        [
            "eval",
            "retrieval",
            "--data",
            captions,
            "--model",
            model,
            "--rerank-k",
            2,
            "--json",
            "--no-progress",
        ],
    )
    metrics = json.loads(text.strip().splitlines()[-1])["metrics"]
    assert metrics["n_images"] == 3 and metrics["rerank_k"] == 2 and 0 <= metrics["r1_mean"] <= 100


def test_eval_split_hint_and_all(app: typer.Typer, model: Path, captions: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    image = load_caption_dataset(captions)[0].image
    rows.write_text(json.dumps({"image": image, "caption": "a red ball"}) + "\n")
    result = runner.invoke(app, ["eval", "retrieval", "--data", str(rows), "--model", str(model)])
    assert result.exit_code == 1 and "--split all" in result.output
    text = _ok(app, ["eval", "retrieval", "--data", rows, "--split", "all", "--model", model, "--json"])
    assert json.loads(text.strip().splitlines()[-1])["metrics"]["n_images"] == 1


def test_outputs_written_at_the_end_are_checked_first(app: typer.Typer, model: Path, captions: Path,
                                                       tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    blocked = tmp_path / "a-file" / "below"
    cases = (
        (["eval", "caption", "--out-dir", str(blocked)], "cannot write --out-dir"),
        (["eval", "vqa", "--out-dir", str(blocked)], "cannot write --out-dir"),
    )
    for args, message in cases:
        result = runner.invoke(app, [*args, "--data", str(captions), "--model", str(model)])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert not (tmp_path / "c.json").exists()


def test_eval_needs_the_head(app: typer.Typer, tiny_models: dict[str, Path], captions: Path) -> None:
    vqa_model = tiny_models["vqa"]
    result = runner.invoke(app, ["eval", "retrieval", "--data", str(captions), "--model", str(vqa_model)])
    assert result.exit_code == 1 and "cannot do" in result.output


def test_parse_overrides() -> None:
    assert parse_overrides(["train.steps=100", "device=cpu", "train.augment_scale=[0.5, 1.0]"]) == {
        "train.steps": 100,
        "device": "cpu",
        "train.augment_scale": [0.5, 1.0],
    }
    with pytest.raises(ValueError):
        parse_overrides(["steps"])


def test_pretrain_runs_a_recipe_and_resumes(
    app: typer.Typer, model: Path, captions: Path, tmp_path: Path
) -> None:
    recipe = {
        "output": str(tmp_path / "run"),
        "device": "cpu",
        "threads": 1,
        "init": str(model),
        "data": {
            "captions": [{"path": str(captions), "split": "train"}],
            "val_captions": {"path": str(captions), "split": "val"},
        },
        "train": {
            "steps": 2,
            "batch_size": 4,
            "itm_batch_size": 2,
            "warmup_steps": 1,
            "eval_every": 2,
            "save_every": 2,
            "log_every": 1,
            "decode_workers": 1,
            "augment": False,
        },
    }
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    text = _ok(app, ["pretrain", "--config", config, "--no-resume"])
    assert "pre-trained model saved to" in text
    assert vision.load(tmp_path / "run" / "best").tasks == {"caption", "vqa", "itm", "itc"}
    state = tmp_path / "run" / "train_state" / "state.json"
    before = json.loads(state.read_text())
    assert before["step"] == 2
    # resuming a finished run trains no further step; --set reaches the recipe
    _ok(app, ["pretrain", "--config", config, "--resume", "--set", "train.log_every=2"])
    assert json.loads(state.read_text())["step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["log_every"] == 2

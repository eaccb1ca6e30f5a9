"""BLIP pre-training on a tiny model: the losses fall, and a resumed run equals an unbroken one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from assistant.training.config import load_config
from assistant.training.pretrain import Pretrainer

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (250, 250, 250)}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrain_data")
    (root / "images").mkdir()
    images, vqa = [], []
    for i, (name, rgb) in enumerate(COLORS.items()):
        for j in range(2):
            file = f"{name}{j}.png"
            Image.new("RGB", (32 + 8 * j, 32), rgb).save(root / "images" / file)
            images.append(
                {
                    "filename": file,
                    "split": "train" if j == 0 else "val",
                    "sentences": [{"raw": f"a {name} picture"}, {"raw": f"the {name} wall"}],
                }
            )
            vqa.append({"image": f"images/{file}", "question": "what color is it?", "answers": [name]})
        del i
    (root / "captions.json").write_text(json.dumps({"images": images}))
    (root / "vqa.jsonl").write_text("\n".join(json.dumps(r) for r in vqa))
    return root


def _config(tmp_path: Path, data: Path, init: Path, steps: int) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
output: {tmp_path / "run"}
device: cpu
seed: 0
init: {init}
data:
  captions: [{{path: {data / "captions.json"}, split: train}}]
  val_captions: {{path: {data / "captions.json"}, split: val}}
  vqa: [{{path: {data / "vqa.jsonl"}}}]
train: {{steps: {steps}, batch_size: 4, vqa_batch_size: 4, eval_every: 3, save_every: 3, log_every: 1,
         warmup_steps: 1, lr: 3.0e-3, lr_new: 3.0e-3, decode_workers: 1}}
""")
    return cfg


def test_losses_fall_and_model_is_saved(tmp_path, tiny_data, tiny_models) -> None:
    trainer = Pretrainer(load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 12)))
    first = trainer.train_step()
    trainer.step = 1
    best = trainer.run(resume=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    last = [h for h in history if "loss" in h][-1]
    assert last["lm"] < first["lm"] and last["vqa"] < first["vqa"]
    assert (best / "model.safetensors").exists() and (best / "tokenizer.json").exists()
    from assistant import vision

    blip = vision.load(best)
    assert blip.tasks == {"caption", "vqa", "itm", "itc"}


def test_training_starts_from_float16_weights_in_float32(tmp_path, tiny_data, tiny_models) -> None:
    """The shipped built-in weights are float16: `init=` them must train float32 master weights (the CNN
    refused the float32 images: 'Input type (torch.FloatTensor) and weight type (torch.HalfTensor)')."""
    import shutil

    import torch

    from assistant.vision.models.builtin import BuiltinBlipModel

    half = tmp_path / "half"
    shutil.copytree(tiny_models["builtin"], half)
    BuiltinBlipModel.from_pretrained(half, dtype=torch.float32).half().save_pretrained(half)
    assert json.loads((half / "config.json").read_text())["dtype"] == "float16"
    trainer = Pretrainer(load_config(_config(tmp_path, tiny_data, half, 2)))
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    assert trainer.train_step()["lm"] > 0


class _Interrupted(Exception):
    pass


def test_resume_equals_unbroken_run(tmp_path, tiny_data, tiny_models) -> None:
    unbroken_dir, broken_dir = tmp_path / "a", tmp_path / "b"
    unbroken_dir.mkdir()
    broken_dir.mkdir()
    a = Pretrainer(load_config(_config(unbroken_dir, tiny_data, tiny_models["builtin"], 6)))
    a.run(resume=False)

    b = Pretrainer(load_config(_config(broken_dir, tiny_data, tiny_models["builtin"], 6)))
    original = b.train_step

    def crash_after_first_save() -> dict:
        if b.step == 4:
            raise _Interrupted
        return original()

    b.train_step = crash_after_first_save  # type: ignore[method-assign]
    with pytest.raises(_Interrupted):
        b.run(resume=False)
    c = Pretrainer(load_config(_config(broken_dir, tiny_data, tiny_models["builtin"], 6)))
    c.run(resume=True)
    assert c.step == 6
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(c.model.state_dict()[key], value, msg=key)


def test_cnn_features_are_reused_until_their_inputs_change(tmp_path, tiny_data, tiny_models, caplog) -> None:
    import shutil

    from assistant.training.pretrain import TRUNK_CACHE_FILE

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    config = _config(tmp_path, data, tiny_models["builtin"], 2)
    first = Pretrainer(load_config(config))
    assert (tmp_path / "run" / TRUNK_CACHE_FILE).exists()
    with caplog.at_level("INFO", logger="assistant.training.pretrain"):
        again = Pretrainer(load_config(config))
    assert "CNN features from" in caplog.text
    assert torch.equal(again.trunk_cache, first.trunk_cache)

    Image.new("RGB", (32, 32), (5, 5, 5)).save(data / "images" / "red0.png")  # an image changed on disk
    caplog.clear()
    with caplog.at_level("INFO", logger="assistant.training.pretrain"):
        changed = Pretrainer(load_config(config))
    assert "CNN features from" not in caplog.text
    assert not torch.equal(changed.trunk_cache, first.trunk_cache)


def test_retrieval_every_skips_itc_and_itm_between_its_steps(tmp_path, tiny_data, tiny_models) -> None:
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 12),
                         {"train.retrieval_every": 3, "train.weight_decay": 0.0})
    trainer = Pretrainer(config)
    itc_head = trainer.model.vision_proj.weight
    seen = []
    for step in range(1, 5):
        trainer.step = step
        before = itc_head.detach().clone()
        metrics = trainer.train_step()
        seen.append("itc" in metrics and "itm" in metrics)
        assert "lm" in metrics and "vqa" in metrics
        # The ITC projection gets gradient only from ITC: unchanged on the steps that skip it.
        assert torch.equal(itc_head, before) != seen[-1]
    assert seen == [False, False, True, False]
    with pytest.raises(ValueError, match="retrieval_every"):
        load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), {"train.retrieval_every": 0})


@pytest.mark.parametrize(
    ("weights", "computed"),
    [
        ({"loss_itm": 0.0}, {"lm", "itc", "vqa"}),
        ({"loss_lm": 0.0, "loss_itc": 0.0}, {"itc", "itm", "vqa"}),  # ITM still needs ITC's similarities
        ({"loss_itc": 0.0, "loss_itm": 0.0, "loss_vqa": 0.0}, {"lm"}),
    ],
)
def test_an_objective_weighted_zero_is_not_computed(
    tmp_path, tiny_data, tiny_models, weights, computed
) -> None:
    overrides = {f"train.{k}": w for k, w in weights.items()} | {"train.weight_decay": 0.0}
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 12), overrides)
    trainer = Pretrainer(config)
    itm_head = trainer.model.itm_head.weight
    before = itm_head.detach().clone()
    metrics = trainer.train_step()
    assert {"lm", "itc", "itm", "vqa"} & set(metrics) == computed
    assert torch.equal(itm_head, before) == ("itm" not in computed)
    with pytest.raises(ValueError, match="loss_lm"):
        load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), {"train.loss_lm": -1.0})
    nothing = {f"train.loss_{k}": 0.0 for k in ("itc", "itm", "lm", "vqa")}
    with pytest.raises(ValueError, match="nothing to train"):
        load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), nothing)


@pytest.mark.parametrize(("override", "message"), [
    ({"train.steps": -1}, "train.steps must be >= 1"), ({"train.eval_every": 0}, "train.eval_every"),
    ({"train.lr": "fast"}, "train.lr must be > 0"), ({"train.label_smoothing": 1.0}, "label_smoothing"),
    ({"train.batch_size": True}, "train.batch_size"), ({"train.time_budget_s": 0}, "time_budget_s"),
    ({"train.scst_top_p": 0}, "scst_top_p"), ({"train.save_every": -5}, "save_every"),
])
def test_a_recipe_out_of_range_is_refused_with_the_setting_named(
    tmp_path, tiny_data, tiny_models, override, message
) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), override)


def test_unreadable_recipes_and_recipes_without_data_are_refused(tmp_path, tiny_data, tiny_models) -> None:
    from assistant.vision.errors import DataError

    (tmp_path / "broken.yaml").write_text("train: {steps: [\n")
    with pytest.raises(ValueError, match="cannot read the recipe"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- steps\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), {"train.save_every": 0})
    assert config.train.save_every == 0  # 0: no periodic saves
    config.data.captions, config.data.vqa = [], []
    with pytest.raises(DataError, match="nothing to train"):
        Pretrainer(config)
    # questions alone train VQA; with VQA off they train nothing
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 3), {"train.loss_vqa": 0.0})
    config.data.captions = []
    with pytest.raises(DataError, match="nothing to train"):
        Pretrainer(config)


def _run_on_a_fake_clock(trainer: Pretrainer, seconds_for_step) -> float:
    """Run ``trainer`` from scratch on a clock that each step advances by ``seconds_for_step(step)``;
    return the clock at the end."""
    now = [0.0]
    trainer.clock = lambda: now[0]
    step = trainer.train_step

    def timed_step() -> dict:
        now[0] += seconds_for_step(trainer.step)
        return step()

    trainer.train_step = timed_step  # type: ignore[method-assign]
    trainer.run(resume=False)
    return now[0]


def test_time_budget_is_kept_when_the_machine_slows_down_mid_run(tmp_path, tiny_data, tiny_models) -> None:
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 1000),
                         {"train.time_budget_s": 40, "train.eval_every": 5, "train.save_every": 0})
    trainer = Pretrainer(config)
    now = _run_on_a_fake_clock(trainer, lambda step: 1.0 if step < 20 else 2.0)  # half speed from step 20
    # Sized at 1 s/step, the run would have planned 40 steps and taken 60 s; re-sized after each
    # validation from the latest pace, it ends within a step or two of the budget.
    assert now <= 40 + 2 * 2.0
    assert 25 <= trainer.step < 40 and trainer.step == config.train.steps


def test_run_ends_at_its_time_budget_when_the_pace_collapses_between_validations(
    tmp_path, tiny_data, tiny_models
) -> None:
    config = load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 1000),
                         {"train.time_budget_s": 40, "train.eval_every": 5, "train.save_every": 5})
    trainer = Pretrainer(config)
    # 10x slower from step 22, just after the sizing that follows the validation of step 20
    now = _run_on_a_fake_clock(trainer, lambda step: 1.0 if step < 22 else 10.0)
    # The sizing after step 21 still saw 1 s/step and planned to step ~40; the run stops at the first
    # step that ends past the budget instead, validated and saved as a finished run.
    assert 40 <= now < 40 + 10.0
    assert trainer.step == config.train.steps < 30
    assert trainer.history[-1]["step"] == trainer.step and "val_lm" in trainer.history[-1]
    state = json.loads((Path(config.output) / "train_state" / "state.json").read_text())
    assert state["step"] == state["steps"] == trainer.step
    resumed = Pretrainer(load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 1000),
                                     {"train.time_budget_s": 40, "train.eval_every": 5}))
    resumed.train_step = lambda: pytest.fail("a finished run trained on after resuming")  # type: ignore
    resumed.run(resume=True)

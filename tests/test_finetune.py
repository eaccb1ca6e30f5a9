"""Fine-tuning with the Trainer: every task on the Salesforce classes and the built-in model, resume,
best-checkpoint selection, and checkpoints that hold no pickles. Tiny random models, generated images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from assistant import vision
from assistant.training import trainer_state
from assistant.training.finetune import FinetuneConfig, build_trainer, finetune
from assistant.training.toy_data import make_caption_dataset, make_vqa_dataset
from assistant.vision.errors import DataError, UnsupportedModelError, VisionError


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def models(tiny_models: dict[str, Path]) -> dict[str, Path]:
    return tiny_models  # read only: every run writes to its own output folder


@pytest.fixture(scope="module")
def captions(root: Path) -> Path:
    return make_caption_dataset(root / "captions", splits={"train": 8, "val": 4})


@pytest.fixture(scope="module")
def vqa(root: Path) -> Path:
    return make_vqa_dataset(root / "vqa", 8)


def _config(task: str, data: Path, model: Path, out: Path, **kw: object) -> FinetuneConfig:
    base: dict[str, object] = {
        "max_steps": 6,
        "batch_size": 4,
        "lr": 1e-3,
        "warmup_ratio": 0.0,
        "progress": False,
        "eval_limit": 4,
    }
    base.update(kw)
    return FinetuneConfig(task=task, data=str(data), output=str(out), model=str(model), **base)  # type: ignore[arg-type]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# The built-in model's caption and retrieval fine-tuning run in the tests below and in test_cli_training.
CASES = [("caption", "caption"), ("vqa", "vqa"), ("itm", "retrieval"), ("builtin", "vqa")]


@pytest.mark.parametrize(("kind", "task"), CASES)
def test_loss_falls_and_model_loads(
    kind: str, task: str, models: dict[str, Path], captions: Path, vqa: Path, tmp_path: Path
) -> None:
    data = vqa if task == "vqa" else captions
    split = None if task == "vqa" else "train"
    # measure the loss on all the training data itself: a few steps must fit it better (retrieval, whose
    # hard negatives change as the model learns, needs a few more)
    steps = 12 if task == "retrieval" else 6
    config = _config(
        task,
        data,
        models[kind],
        tmp_path / "out",
        split=split,
        val_data=str(data),
        val_split=split,
        eval_limit=0,
        max_steps=steps,
    )
    trainer = build_trainer(config)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < before
    trainer.save_model(config.output)
    blip = vision.load(config.output)
    assert (
        blip.checkpoint.architecture
        == json.loads((models[kind] / "config.json").read_text())["architectures"][0]
    )
    tuned, original = _weights(Path(config.output)), _weights(models[kind])
    assert any(not torch.equal(tuned[k], original[k]) for k in original if k in tuned)
    if task == "caption":
        assert blip.caption(str(Path(captions).parent / "images" / "img0000.png"), max_new_tokens=5)[0].ok


def test_task_metric_picks_the_best_checkpoint(
    models: dict[str, Path], captions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = finetune(
        _config("retrieval", captions, models["builtin"], out, val_split="val", save_steps=2, eval_rerank_k=2)
    )
    assert result.metric == "r1_mean"
    evals = [h for h in result.log_history if "eval_r1_mean" in h]
    assert len(evals) == 3 and all(0 <= h["eval_r1_mean"] <= 100 for h in evals)
    assert result.best_metric == max(h["eval_r1_mean"] for h in evals)
    best = Path(result.best_checkpoint)
    assert (
        best.parent == out
        and best.name
        == f"checkpoint-{next(h['step'] for h in evals if h['eval_r1_mean'] == result.best_metric)}"
    )
    # the final model is the best checkpoint's weights
    final, chosen = _weights(out), _weights(best)
    assert all(torch.equal(final[k], chosen[k]) for k in chosen)
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["best_checkpoint"] == str(best)


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_resume_repeats_the_unbroken_run(
    models: dict[str, Path], captions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # retrieval samples hard negatives: the RNG state must come back too; grad-accum and 2 epochs in 6 steps
    kw = {"save_steps": 3, "grad_accum": 2, "batch_size": 2, "max_steps": 6}
    unbroken = finetune(_config("retrieval", captions, models["builtin"], tmp_path / "a", **kw))
    broken = build_trainer(_config("retrieval", captions, models["builtin"], tmp_path / "b", **kw))
    broken.add_callback(StopAt(3))
    broken.train()
    assert broken.state.global_step == 3
    checkpoint = tmp_path / "b" / "checkpoint-3"
    assert trainer_state.pickles_in(checkpoint) == []
    assert {"optimizer.safetensors", "rng_state.safetensors", "scheduler.json", "model.safetensors"} <= {
        p.name for p in checkpoint.iterdir()
    }

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    resumed = finetune(_config("retrieval", captions, models["builtin"], tmp_path / "b", resume=True, **kw))
    assert resumed.global_step == unbroken.global_step == 6
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_resume_refuses_foreign_checkpoints(models: dict[str, Path], captions: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "out" / "checkpoint-2"
    foreign.mkdir(parents=True)
    (foreign / "optimizer.pt").write_bytes(b"not for unpickling")
    (foreign / "trainer_state.json").write_text("{}")
    trainer = build_trainer(_config("caption", captions, models["caption"], tmp_path / "out"))
    with pytest.raises(VisionError, match="not a fine-tuning checkpoint of this trainer"):
        trainer.train(resume_from_checkpoint=True)


def test_data_is_validated_before_training(models: dict[str, Path], tmp_path: Path) -> None:
    data = make_caption_dataset(tmp_path / "data", 4)
    (tmp_path / "data" / "images" / "img0001.png").unlink()
    with pytest.raises(DataError, match="missing image"):
        build_trainer(_config("caption", data, models["caption"], tmp_path / "out"))
    trainer = build_trainer(_config("caption", data, models["caption"], tmp_path / "out", skip_bad=True))
    assert len(trainer.train_dataset) == 3 * 2  # three images left, two captions each


def test_checkpoint_needs_the_tasks_head(models: dict[str, Path], captions: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError):
        build_trainer(_config("caption", captions, models["itm"], tmp_path / "out"))
    with pytest.raises(UnsupportedModelError):
        build_trainer(_config("retrieval", captions, models["caption"], tmp_path / "out"))


def test_builtin_caption_keeps_its_cnn_frozen(
    models: dict[str, Path], captions: Path, tmp_path: Path
) -> None:
    trainer = build_trainer(_config("caption", captions, models["builtin"], tmp_path / "out", max_steps=3))
    model = trainer.model
    trunk = {n: p.detach().clone() for n, p in model.vision_model.trunk.state_dict().items()}
    decoder = {n: p.detach().clone() for n, p in model.text_decoder.state_dict().items()}
    trainer.train()
    after = model.vision_model.trunk.state_dict()
    assert all(torch.equal(trunk[n], after[n]) for n in trunk)  # weights and BatchNorm statistics
    assert any(not torch.equal(decoder[n], p) for n, p in model.text_decoder.state_dict().items())


def test_mixed_precision(models: dict[str, Path], captions: Path, tmp_path: Path) -> None:
    trainer = build_trainer(
        _config("caption", captions, models["caption"], tmp_path / "bf16", precision="bf16", max_steps=1)
    )
    seen: list[tuple[bool, torch.dtype]] = []
    decoder = trainer.model.text_decoder.bert  # the LM loss runs the decoder's body, then its head
    forward = decoder.forward

    def spy(*args: object, **kwargs: object) -> object:
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return forward(*args, **kwargs)

    decoder.forward = spy
    trainer.train()
    # the objectives call sub-modules, which Accelerate's forward wrapper would not reach
    assert seen and all(on and dtype == torch.bfloat16 for on, dtype in seen)
    if not torch.cuda.is_available():  # fp16 needs CUDA: the run falls back to fp32
        fp16 = build_trainer(
            _config("caption", captions, models["caption"], tmp_path / "fp16", precision="fp16")
        )
        assert not fp16.args.fp16 and not fp16.args.bf16

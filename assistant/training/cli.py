"""The model commands (``blip-assistant model ...``): ``finetune``, ``eval`` and ``pretrain``.

They are for building and measuring models, not for everyday use, and need the ``train`` extra (typer).
Heavy imports (torch, transformers) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from assistant.training.cli_common import (
    DecodingOption,
    DeviceOption,
    DtypeOption,
    FastOption,
    MaxNewTokensOption,
    ModelOption,
    NoRepeatWordsOption,
    NumBeamsOption,
    ProgressOption,
    ThreadsOption,
    check_writable,
    fail,
    load_model,
)
from assistant.vision import defaults

TASKS = ("caption", "vqa", "retrieval")

finetune_app = typer.Typer(
    help="Fine-tune a BLIP checkpoint on a caption, VQA or retrieval dataset (Hugging Face Trainer).",
    no_args_is_help=True,
)
eval_app = typer.Typer(
    help="Evaluate a checkpoint: caption metrics (CIDEr...), VQA accuracy, retrieval Recall@K.",
    no_args_is_help=True,
)


def _split(value: str | None) -> str | None:
    """``--split all`` (or an empty value) means every row, for files without split information."""
    return None if value is None or value.strip().lower() in ("", "all", "none") else value


def _errors():
    from assistant.vision.errors import VisionError

    return (VisionError, ValueError, FileNotFoundError)


def _message(exc: Exception) -> str:
    text = str(exc)
    if "no split information" in text:
        text += " (pass --split all to use every row)"
    return text


# --- finetune -------------------------------------------------------------------------------------


def _finetune_command(task: str):
    def command(
        data: Path = typer.Option(
            ..., "--data", "-d", help="Training dataset (any format the assistant reads)."
        ),
        output: Path = typer.Option(
            ..., "--output", "--out", "-o", help="Folder for checkpoints and the final model."
        ),
        model: str = ModelOption,
        split: str = typer.Option("train", "--split", help="Split of --data to train on ('all': every row)."),
        val_data: Path | None = typer.Option(None, "--val-data", help="Validation dataset (another file)."),
        val_split: str | None = typer.Option(None, "--val-split", help="Validation split, e.g. val."),
        image_root: Path | None = typer.Option(
            None, "--image-root", help="Folder the image paths are under."
        ),
        skip_bad: bool = typer.Option(
            False, "--skip-bad", help="Drop rows whose image is missing or broken."
        ),
        epochs: float = typer.Option(defaults.FINETUNE_EPOCHS, "--epochs", min=0.0),
        max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after N steps."),
        batch_size: int = typer.Option(defaults.FINETUNE_BATCH_SIZE, "--batch-size", "-b", min=1),
        grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Gradient accumulation steps."),
        lr: float = typer.Option(defaults.FINETUNE_LR, "--lr", help="Peak learning rate (cosine decay)."),
        bf16: bool = typer.Option(False, "--bf16", help="bf16 mixed precision (where supported)."),
        fp16: bool = typer.Option(False, "--fp16", help="fp16 mixed precision (CUDA only)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        seed: int = typer.Option(0, "--seed"),
        save_steps: int | None = typer.Option(
            None, "--save-steps", min=1, help="Save and evaluate every N steps (default: every epoch)."
        ),
        eval_limit: int = typer.Option(
            defaults.FINETUNE_EVAL_LIMIT,
            "--eval-limit",
            min=0,
            help="Validation images/questions scored at each evaluation (0: all).",
        ),
        freeze_vision: str = typer.Option(
            "auto", "--freeze-vision", help="auto (built-in: CNN frozen), none, cnn or vision."
        ),
        workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
        threads: int | None = ThreadsOption,
        resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output."),
        progress: bool = ProgressOption,
    ) -> None:
        from assistant.training.finetune import FinetuneConfig, finetune

        if bf16 and fp16:
            raise fail("choose one of --bf16 and --fp16")
        try:
            config = FinetuneConfig(
                task=task,
                data=str(data),
                output=str(output),
                model=model,
                split=_split(split),
                val_data=str(val_data) if val_data else None,
                val_split=_split(val_split),
                image_root=str(image_root) if image_root else None,
                skip_bad=skip_bad,
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                grad_accum=grad_accum,
                lr=lr,
                precision="bf16" if bf16 else "fp16" if fp16 else "fp32",
                device=device,
                seed=seed,
                save_steps=save_steps,
                eval_limit=eval_limit,
                freeze_vision=freeze_vision,
                workers=workers,
                threads=threads,
                resume=resume,
                progress=progress,
            )
            result = finetune(config)
        except _errors() as exc:
            raise fail(_message(exc)) from exc
        best = (
            f" (best {result.metric} {result.best_metric:.2f} at {result.best_checkpoint})"
            if result.metric and result.best_metric is not None
            else ""
        )
        typer.echo(f"fine-tuned model saved to {result.output} after {result.global_step} steps{best}")

    command.__doc__ = {
        "caption": "Fine-tune captioning (LM loss); validation metric CIDEr.",
        "vqa": "Fine-tune VQA (answer decoder loss); validation metric accuracy.",
        "retrieval": "Fine-tune retrieval (ITC + ITM with hard negatives); validation metric mean R@1.",
    }[task]
    return command


for _task in TASKS:
    finetune_app.command(_task)(_finetune_command(_task))


# --- eval -----------------------------------------------------------------------------------------


def _load_eval_records(
    task: str, data: Path, split: str | None, image_root: Path | None, skip_bad: bool, limit: int | None
) -> list:
    from assistant.training.finetune import load_records

    records = load_records(task, str(data), split, str(image_root) if image_root else None, skip_bad)
    return records[:limit] if limit else records


def _finish_eval(
    run: Any,
    *,
    model: str,
    data: Path,
    split: str | None,
    out_dir: Path | None,
    as_json: bool,
    extra: dict[str, Any],
) -> None:
    from assistant.evaluation.report import print_table, save_predictions, write_report

    if as_json:
        sys.stdout.write(json.dumps({"task": run.task, "metrics": run.metrics}, default=str) + "\n")
    else:
        print_table(run.metrics, title=f"{run.task} evaluation of {model}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        report = write_report(
            out_dir / "report.json",
            task=run.task,
            model=model,
            data=str(data),
            split=split,
            metrics=run.metrics,
            seconds=run.seconds,
            extra=extra,
        )
        save_predictions(out_dir / "predictions.jsonl", run.predictions)
        typer.echo(f"report: {report}; predictions: {out_dir / 'predictions.jsonl'}", err=True)


EvalData = typer.Option(..., "--data", "-d", help="Evaluation dataset (any format the assistant reads).")
EvalSplit = typer.Option("test", "--split", help="Split to evaluate ('all': every row).")
LimitOption = typer.Option(None, "--limit", min=1, help="Only the first N images (questions for VQA).")
def _writable_out_dir(out_dir: Path | None) -> Path | None:
    """Checked when the command line is read: an evaluation writes its report only at the end."""
    if out_dir is not None:
        check_writable(out_dir / "report.json", "--out-dir")
    return out_dir


OutDirOption = typer.Option(None, "--out-dir", help="Write report.json and predictions.jsonl here.",
                            callback=_writable_out_dir)
ImageRootOption = typer.Option(None, "--image-root", help="Folder the image paths are under.")
SkipBadOption = typer.Option(False, "--skip-bad", help="Leave out rows whose image is missing or broken.")
JsonMetricsOption = typer.Option(
    False, "--json", help="Print the metrics as one JSON line instead of a table."
)
EvalBatchOption = typer.Option(defaults.BATCH_SIZE, "--batch-size", "-b", min=1)


@eval_app.command("caption")
def eval_caption(
    data: Path = EvalData,
    split: str = EvalSplit,
    model: str = ModelOption,
    limit: int | None = LimitOption,
    out_dir: Path | None = OutDirOption,
    image_root: Path | None = ImageRootOption,
    skip_bad: bool = SkipBadOption,
    decoding: str = DecodingOption,
    num_beams: int = NumBeamsOption,
    max_new_tokens: int = MaxNewTokensOption,
    no_repeat_words: bool = NoRepeatWordsOption,
    prompt: str | None = typer.Option(None, "--prompt", help="Text every caption continues."),
    meteor: bool = typer.Option(True, "--meteor/--no-meteor", help="METEOR (needs Java)."),
    batch_size: int = EvalBatchOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    threads: int | None = ThreadsOption,
    fast: bool | None = FastOption,
    as_json: bool = JsonMetricsOption,
    progress: bool = ProgressOption,
) -> None:
    """Caption every image and score BLEU, METEOR, ROUGE-L and CIDEr against all references."""
    from assistant.evaluation.runners import caption_eval
    from assistant.vision.tasks.generation import GenerationSettings

    split_name = _split(split)
    try:
        settings = GenerationSettings(
            decoding=decoding,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            no_repeat_words=no_repeat_words,
        )
        records = _load_eval_records("caption", data, split_name, image_root, skip_bad, limit)
        blip = load_model(model, device, dtype, threads, fast, task="caption")
        run = caption_eval(
            blip,
            records,
            settings=settings,
            prompt=prompt,
            batch_size=batch_size,
            meteor=meteor,
            progress=progress,
        )
    except _errors() as exc:
        raise fail(_message(exc)) from exc
    _finish_eval(
        run,
        model=model,
        data=data,
        split=split_name,
        out_dir=out_dir,
        as_json=as_json,
        extra={"decoding": settings.as_dict(), "prompt": prompt, "limit": limit},
    )


@eval_app.command("vqa")
def eval_vqa(
    data: Path = EvalData,
    split: str = EvalSplit,
    model: str = ModelOption,
    limit: int | None = LimitOption,
    out_dir: Path | None = OutDirOption,
    image_root: Path | None = ImageRootOption,
    skip_bad: bool = SkipBadOption,
    rank: bool = typer.Option(False, "--rank", help="Rank candidate answers instead of generating one."),
    choices_file: Path | None = typer.Option(None, "--choices-file", help="Candidate answers, one a line."),
    answers_from: Path | None = typer.Option(
        None,
        "--answers-from",
        help="Dataset whose answers are the candidates (default: --data's train split).",
    ),
    max_choices: int | None = typer.Option(
        None, "--max-choices", min=1, help="Only the N most common answers."
    ),
    rank_k: int = typer.Option(
        defaults.VQA_RANK_K, "--rank-k", min=1,
        help="Candidates scored in full per question; the rest are cut by their first token (BLIP's k_test).",
    ),
    batch_size: int = EvalBatchOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    threads: int | None = ThreadsOption,
    fast: bool | None = FastOption,
    as_json: bool = JsonMetricsOption,
    progress: bool = ProgressOption,
) -> None:
    """Answer every question and score accuracy (and WUPS when WordNet's data is installed).

    Answers are compared with '_' read as a space (DAQUAR's garbage_bin = the model's garbage bin).
    """
    from assistant.evaluation.runners import answer_vocabulary, vqa_eval

    split_name = _split(split)
    try:
        records = _load_eval_records("vqa", data, split_name, image_root, skip_bad, limit)
        choices = None
        if choices_file is not None:
            choices = [line.strip() for line in choices_file.read_text().splitlines() if line.strip()]
            choices = choices[:max_choices] if max_choices else choices
        elif rank:
            from assistant.datasets import load_vqa_dataset

            # only the answers are needed: the images are not checked
            train = load_vqa_dataset(
                answers_from or data,
                split=None if answers_from else "train",
                image_root=image_root,
                on_bad="skip",
                check_images=False,
            )
            choices = answer_vocabulary(train, max_choices)
        blip = load_model(model, device, dtype, threads, fast, task="vqa")
        run = vqa_eval(
            blip, records, choices=choices, rank_k=rank_k, batch_size=batch_size, progress=progress
        )
    except _errors() as exc:
        raise fail(_message(exc)) from exc
    _finish_eval(
        run,
        model=model,
        data=data,
        split=split_name,
        out_dir=out_dir,
        as_json=as_json,
        extra={"mode": run.metrics["mode"], "n_choices": len(choices) if choices else None, "limit": limit},
    )


@eval_app.command("retrieval")
def eval_retrieval(
    data: Path = EvalData,
    split: str = EvalSplit,
    model: str = ModelOption,
    limit: int | None = LimitOption,
    out_dir: Path | None = OutDirOption,
    image_root: Path | None = ImageRootOption,
    skip_bad: bool = SkipBadOption,
    rerank_k: int = typer.Option(
        defaults.RERANK_K,
        "--rerank-k",
        min=0,
        help="Re-score each query's top-k ITC candidates with ITM (0: ITC only).",
    ),
    batch_size: int = EvalBatchOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    threads: int | None = ThreadsOption,
    fast: bool | None = FastOption,
    as_json: bool = JsonMetricsOption,
    progress: bool = ProgressOption,
) -> None:
    """Image->text and text->image Recall@1/5/10 and median rank, ITC alone and ITM re-ranked."""
    from assistant.evaluation.runners import retrieval_eval

    split_name = _split(split)
    try:
        records = _load_eval_records("retrieval", data, split_name, image_root, skip_bad, limit)
        blip = load_model(model, device, dtype, threads, fast, task="itc")
        run = retrieval_eval(blip, records, rerank_k=rerank_k, batch_size=batch_size, progress=progress)
    except _errors() as exc:
        raise fail(_message(exc)) from exc
    _finish_eval(
        run,
        model=model,
        data=data,
        split=split_name,
        out_dir=out_dir,
        as_json=as_json,
        extra={"rerank_k": rerank_k, "limit": limit},
    )


# --- pretrain -------------------------------------------------------------------------------------


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``train.steps=100`` -> ``{"train.steps": 100}``; values are read as YAML (numbers, lists, null)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set wants KEY=VALUE (e.g. train.steps=100), not {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def pretrain(
    config: Path = typer.Option(..., "--config", "-c", exists=True, dir_okay=False, help="Recipe YAML."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe value: --set train.steps=100."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the output's saved state."),
    install: bool = typer.Option(
        False, "--install", help="Install the result as the package's built-in model (float16)."
    ),
) -> None:
    """Pre-train the built-in model from a YAML recipe (resources/models/builtin/recipe.yaml)."""
    from assistant.training.config import load_config
    from assistant.training.pretrain import Pretrainer

    try:
        recipe = load_config(config, parse_overrides(overrides))
        out = Pretrainer(recipe).run(resume=resume)
    except _errors() as exc:
        raise fail(_message(exc)) from exc
    typer.echo(f"pre-trained model saved to {out}")
    if install:
        from assistant.training.export import install_builtin

        typer.echo(f"installed as the built-in model: {install_builtin(out)}")


def interpolate(
    before: Path = typer.Argument(..., exists=True, file_okay=False, help="The weights before a stage."),
    after: Path = typer.Argument(..., exists=True, file_okay=False, help="The weights after it."),
    weight: float = typer.Option(..., "--weight", help="How far toward AFTER: 0 is BEFORE, 1 is AFTER."),
    out: Path = typer.Option(..., "--out", help="A new folder for the result."),
) -> None:
    """Interpolate two fine-tunings of one model (WiSE-FT): keep most of both (model card, part three)."""
    from assistant.training.interpolate import interpolate as mix

    try:
        typer.echo(f"interpolated weights saved to {mix(before, after, weight, out)}")
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from exc


def register(app: typer.Typer) -> None:
    """Register this area's commands on the main app."""
    app.add_typer(finetune_app, name="finetune")
    app.add_typer(eval_app, name="eval")
    app.command("pretrain")(pretrain)
    app.command("interpolate")(interpolate)

"""Fine-tuning with the Hugging Face ``Trainer``: captioning, VQA and image-text retrieval.

:class:`BlipTrainer` is a ``Trainer`` whose loss is one of BLIP's objectives
(:mod:`assistant.training.objectives`) and whose evaluation is the task's own metric on a validation subset
(CIDEr, VQA accuracy, mean R@1), which also picks the best checkpoint. It works for the Salesforce
classes (``BlipForConditionalGeneration``: caption; ``BlipForQuestionAnswering``: vqa;
``BlipForImageTextRetrieval``: retrieval) and for the built-in model (all three).

Checkpoints hold no pickles: weights are safetensors, and the optimizer, scheduler, scaler and RNG
states that ``Trainer`` would ``torch.save`` are written as safetensors + JSON by
:mod:`assistant.training.trainer_state`. Resuming reads only those files, and only from checkpoint
folders that this trainer wrote (they carry a ``blipkit_checkpoint.json`` marker).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from assistant.datasets import load_caption_dataset, load_vqa_dataset
from assistant.evaluation.runners import flat_numbers, primary_metric, run_eval
from assistant.training import objectives as obj
from assistant.training import trainer_state as st
from assistant.training.finetune_data import (
    FINETUNE_TASKS,
    PairCollator,
    PairDataset,
    caption_examples,
    vqa_examples,
)
from assistant.vision import defaults
from assistant.vision.errors import DataError, VisionError
from assistant.vision.models import parts
from assistant.vision.runtime.checkpoint import CAPTION, ITC, ITM, VQA, Checkpoint, load_checkpoint
from assistant.vision.runtime.resolve import resolve_checkpoint

log = logging.getLogger(__name__)

REQUIRED_HEADS = {"caption": (CAPTION,), "vqa": (VQA,), "retrieval": (ITC, ITM)}
PRECISIONS = ("fp32", "bf16", "fp16")
FREEZE_CHOICES = ("auto", "none", "cnn", "vision")
REPORT_FILE = "finetune_report.json"


@dataclass
class FinetuneConfig:
    """Everything one fine-tuning run needs; the ``blip-assistant model finetune`` options map onto these
    fields."""

    task: str
    data: str
    output: str
    model: str = defaults.DEFAULT_MODEL
    split: str | None = "train"
    val_data: str | None = None  # another file for validation (default: ``data`` when val_split is set)
    val_split: str | None = None
    image_root: str | None = None
    skip_bad: bool = False  # drop rows with missing/unreadable images instead of refusing the dataset
    epochs: float = defaults.FINETUNE_EPOCHS
    max_steps: int | None = None  # overrides epochs
    batch_size: int = defaults.FINETUNE_BATCH_SIZE
    grad_accum: int = 1
    lr: float = defaults.FINETUNE_LR
    weight_decay: float = defaults.FINETUNE_WEIGHT_DECAY
    warmup_ratio: float = defaults.FINETUNE_WARMUP_RATIO
    label_smoothing: float = defaults.FINETUNE_LABEL_SMOOTHING
    precision: str = "fp32"  # bf16 / fp16 mixed precision where the device supports it
    device: str = "auto"  # auto (CUDA when available), cpu or cuda
    seed: int = 0
    save_steps: int | None = None  # None: save (and evaluate) once per epoch
    save_total_limit: int = defaults.FINETUNE_SAVE_TOTAL_LIMIT
    eval_limit: int = defaults.FINETUNE_EVAL_LIMIT
    eval_rerank_k: int = defaults.RERANK_K
    eval_num_beams: int = defaults.NUM_BEAMS
    freeze_vision: str = "auto"  # auto: the built-in model's CNN stays frozen (as in pre-training)
    max_tokens: int = defaults.MAX_TEXT_TOKENS
    workers: int = 0
    threads: int | None = None  # torch CPU threads (default: torch's choice)
    logging_steps: int = 10
    resume: bool | str = False  # True: the last checkpoint in ``output``; or a checkpoint folder
    progress: bool = True
    extra_args: dict[str, Any] = field(default_factory=dict)  # more TrainingArguments fields

    def __post_init__(self) -> None:
        if self.task not in FINETUNE_TASKS:
            raise ValueError(f"task must be one of {FINETUNE_TASKS}, not {self.task!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.freeze_vision not in FREEZE_CHOICES:
            raise ValueError(f"freeze_vision must be one of {FREEZE_CHOICES}, not {self.freeze_vision!r}")


@dataclass
class FinetuneResult:
    output: Path  # a save_pretrained folder: vision.load(output) takes it
    best_checkpoint: str | None
    best_metric: float | None
    metric: str | None
    global_step: int
    log_history: list[dict[str, Any]]


# --- data ---------------------------------------------------------------------------------------


def load_records(task: str, path: str, split: str | None, image_root: str | None, skip_bad: bool) -> list:
    """Dataset records for a task, validated (every image checked) before any training starts."""
    on_bad = "skip" if skip_bad else "raise"
    if task == "vqa":
        return load_vqa_dataset(path, split=split, image_root=image_root, on_bad=on_bad)
    return load_caption_dataset(path, split=split, image_root=image_root, on_bad=on_bad)


def _examples(task: str, records: list) -> list:
    examples = vqa_examples(records) if task == "vqa" else caption_examples(records)
    if not examples:
        raise DataError(f"no {task} training examples in the dataset (no captions or answers)")
    return examples


# --- losses -------------------------------------------------------------------------------------


def _temperature(model: torch.nn.Module) -> torch.Tensor | float:
    learned = getattr(model, "itc_temperature", None)
    return learned if learned is not None else defaults.ITC_TEMPERATURE


def task_losses(
    task: str, model: torch.nn.Module, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0
) -> dict[str, torch.Tensor]:
    """The fine-tuning loss of a task on one batch, and its parts (``loss`` is what is minimised).

    caption: the decoder's LM loss; vqa: the answer decoder's loss; retrieval: ITC + ITM with hard
    negatives mined from the ITC similarities.
    """
    embeds = model.vision_model(pixel_values=batch["pixel_values"])[0]
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if task == "caption":
        lm = obj.lm_loss(model, embeds, ids, mask, label_smoothing)
        return {"loss": lm, "lm": lm}
    if task == "vqa":
        vqa = obj.vqa_loss(model, embeds, batch["question_ids"], batch["question_mask"], ids, mask)
        return {"loss": vqa, "vqa": vqa}
    image_ids = batch["image_ids"]
    itc, sim = obj.itc_loss(
        parts.image_feature(model, embeds), parts.text_feature(model, ids, mask), image_ids,
        _temperature(model),
    )
    itm, itm_acc = obj.itm_loss(model, embeds, ids, mask, image_ids, sim.detach())
    return {"loss": itc + itm, "itc": itc, "itm": itm, "itm_acc": itm_acc}


# --- the trainer --------------------------------------------------------------------------------


class BlipTrainer(Trainer):
    """A ``Trainer`` for BLIP tasks: BLIP objectives as the loss, the task metric as the evaluation,
    checkpoints as safetensors + JSON only."""

    # compute_loss returns a per-batch mean: the Trainer divides it over gradient accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        blip_task: str,
        checkpoint: Checkpoint,
        val_records: list | None = None,
        label_smoothing: float = 0.0,
        eval_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.blip_task = blip_task
        self.blip_checkpoint = checkpoint
        self.val_records = val_records or []
        self.label_smoothing = label_smoothing
        self.eval_options = eval_options or {}

    # --- loss ---------------------------------------------------------------------------------
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        module = self.accelerator.unwrap_model(model)
        trunk = getattr(module.vision_model, "trunk", None)
        if trunk is not None and module.training:
            trunk.eval()  # BatchNorm keeps ImageNet's statistics: fine-tuning batches are small
        # Accelerate's autocast wraps only the model's forward; the objectives call its sub-modules.
        with self.accelerator.autocast():
            losses = task_losses(
                self.blip_task, module, inputs, self.label_smoothing if module.training else 0.0
            )
        return (losses["loss"], losses) if return_outputs else losses["loss"]

    # --- evaluation ---------------------------------------------------------------------------
    def _live_blip(self):
        from assistant.vision.blip import Blip

        model = self.accelerator.unwrap_model(self.model)
        param = next(model.parameters())
        ckpt = self.blip_checkpoint
        live = Checkpoint(
            name=ckpt.name,
            path=Path(self.args.output_dir),
            model=model,
            tokenizer=ckpt.tokenizer,
            image_processor=ckpt.image_processor,
            tasks=ckpt.tasks,
            device=param.device,
            dtype=param.dtype,
            architecture=ckpt.architecture,
        )
        return Blip(live)

    @torch.no_grad()
    def _validation_loss(self) -> float | None:
        if self.eval_dataset is None:
            return None
        total, count = 0.0, 0
        for batch in self.get_eval_dataloader():
            batch = self._prepare_inputs(batch)
            n = len(batch["image_ids"])
            total += float(self.compute_loss(self.model, batch)) * n
            count += n
        return total / max(count, 1)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Validation loss and the task metric (CIDEr / accuracy / mean R@1) on the validation subset."""
        started = time.monotonic()
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        # Evaluation samples (ITM negatives); it must not move the training's random streams.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.args.seed)
            metrics: dict[str, float] = {}
            loss = self._validation_loss()
            if loss is not None:
                metrics["loss"] = loss
            if self.val_records:
                run = run_eval(self.blip_task, self._live_blip(), self.val_records, **self.eval_options)
                metrics.update(_headline(run.metrics))
        model.train(was_training)
        metrics["runtime"] = time.monotonic() - started
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # --- saving: no pickles -------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        model.save_pretrained(folder, state_dict=state_dict)
        self.blip_checkpoint.tokenizer.save_pretrained(folder)
        self.blip_checkpoint.image_processor.save_pretrained(folder)
        # Trainer would torch.save its arguments here; JSON says the same and loads without unpickling
        (folder / "training_args.json").write_text(self.args.to_json_string())

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        st.save_optimizer(self.optimizer, folder)
        st.save_scheduler(self.lr_scheduler, folder)
        (folder / st.MARKER).write_text(json.dumps({"task": self.blip_task, "format": 1}))

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            st.save_scaler(scaler, Path(output_dir))

    def _save_rng_state(self, output_dir: str) -> None:
        st.save_rng(Path(output_dir))

    # --- loading: safetensors and JSON only ---------------------------------------------------
    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        st.load_weights(model or self.model, Path(resume_from_checkpoint))

    def _load_best_model(self) -> None:
        log.info(
            "loading the best checkpoint %s (%s)", self.state.best_model_checkpoint, self.state.best_metric
        )
        st.load_weights(self.accelerator.unwrap_model(self.model), Path(self.state.best_model_checkpoint))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        st.load_optimizer(self.optimizer, Path(checkpoint))
        st.load_scheduler(self.lr_scheduler, Path(checkpoint))

    def _load_scaler(self, checkpoint: str | None) -> None:
        if checkpoint is not None:
            st.load_scaler(getattr(self.accelerator, "scaler", None), Path(checkpoint))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is not None and not st.load_rng(Path(checkpoint)):
            log.warning(
                "%s has no RNG state: the resumed run will not repeat the uninterrupted one", checkpoint
            )

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """Train, resuming from ``resume_from_checkpoint`` (True: the last checkpoint in the output folder,
        starting afresh when there is none). Only checkpoints this trainer wrote are accepted."""
        if resume_from_checkpoint is True:
            found = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            if found is None:
                log.warning(
                    "no checkpoint in %s to resume from: starting from the model", self.args.output_dir
                )
            resume_from_checkpoint = found
        if resume_from_checkpoint:
            check_resumable(Path(resume_from_checkpoint), self.blip_task)
        return super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers worth a line in the training log: top-level scores and, for retrieval, the R@1s."""
    return {
        k: v
        for k, v in flat_numbers(metrics).items()
        if not k.startswith("n_") and k != "rerank_k" and ("." not in k or k.endswith("R@1"))
    }


def check_resumable(folder: Path, task: str) -> None:
    """Refuse checkpoint folders that the engine's trainer did not write (their state would need
    unpickling)."""
    marker = folder / st.MARKER
    if not marker.is_file():
        raise VisionError(
            f"{folder} is not a fine-tuning checkpoint of this trainer (no {st.MARKER}); "
            "the engine resumes only from "
            "checkpoints it wrote, whose state is safetensors + JSON"
        )
    written_for = json.loads(marker.read_text()).get("task")
    if written_for != task:
        raise VisionError(f"{folder} is a {written_for!r} checkpoint, not {task!r}")


# --- running ------------------------------------------------------------------------------------


def resolve_precision(requested: str, cuda: bool) -> str:
    """The precision to train in: fp16 needs CUDA, bf16 a GPU that has it (or the CPU); else fp32."""
    if requested == "fp16" and not cuda:
        log.warning("fp16 mixed precision needs a CUDA GPU: training in fp32")
        return "fp32"
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16: training in fp32")
        return "fp32"
    return requested


def _freeze(model: torch.nn.Module, how: str) -> None:
    trunk = getattr(model.vision_model, "trunk", None)
    if how == "vision" or (how in ("auto", "cnn") and trunk is not None):
        target = model.vision_model if how == "vision" else trunk
        for p in target.parameters():
            p.requires_grad = False


def training_arguments(config: FinetuneConfig, has_val: bool) -> TrainingArguments:
    cuda = config.device != "cpu" and torch.cuda.is_available()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise VisionError("--device cuda asked for, but torch sees no CUDA GPU")
    precision = resolve_precision(config.precision, cuda)
    every = {"strategy": "steps", "steps": config.save_steps} if config.save_steps else {"strategy": "epoch"}
    kwargs: dict[str, Any] = {
        "output_dir": config.output,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.lr,
        "weight_decay": config.weight_decay,
        "warmup_steps": config.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "save_strategy": every["strategy"],
        "save_total_limit": config.save_total_limit,
        "eval_strategy": every["strategy"] if has_val else "no",
        "load_best_model_at_end": has_val,
        "metric_for_best_model": primary_metric(config.task) if has_val else None,
        "greater_is_better": True if has_val else None,
        "logging_steps": config.logging_steps,
        "report_to": "none",
        "remove_unused_columns": False,
        "label_names": [],
        "seed": config.seed,
        "data_seed": config.seed,
        "use_cpu": not cuda,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "dataloader_num_workers": config.workers,
        "dataloader_pin_memory": cuda,
        "disable_tqdm": not config.progress,
        **config.extra_args,
    }
    if config.save_steps:
        kwargs.update(save_steps=config.save_steps, eval_steps=config.save_steps)
    return TrainingArguments(**kwargs)


def build_trainer(config: FinetuneConfig) -> BlipTrainer:
    """Load the model and data, validate both, and set up the trainer (nothing is trained yet)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    ckpt = load_checkpoint(config.model, resolve_checkpoint(config.model), fast=False)  # trainable float32
    for head in REQUIRED_HEADS[config.task]:
        ckpt.require(head)
    records = load_records(config.task, config.data, config.split, config.image_root, config.skip_bad)
    train_set = PairDataset(_examples(config.task, records), ckpt.image_processor)
    val_records: list = []
    if config.val_data or config.val_split:
        val_records = load_records(
            config.task, config.val_data or config.data, config.val_split, config.image_root, config.skip_bad
        )
        val_records = val_records[: config.eval_limit] if config.eval_limit else val_records
    val_set = PairDataset(_examples(config.task, val_records), ckpt.image_processor) if val_records else None
    model = ckpt.model
    _freeze(model, config.freeze_vision)
    model.train()
    eval_options: dict[str, Any] = {}
    if config.task == "caption":
        from assistant.vision.tasks.generation import GenerationSettings

        # the COCO Java tools take seconds to start: the pure-Python tokenizer and no METEOR while training
        eval_options = {
            "settings": GenerationSettings(num_beams=config.eval_num_beams),
            "meteor": False,
            "tokenizer": "python",
        }
    elif config.task == "retrieval":
        eval_options = {"rerank_k": config.eval_rerank_k}
    return BlipTrainer(
        model=model,
        args=training_arguments(config, has_val=bool(val_records)),
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=PairCollator(ckpt.tokenizer, config.max_tokens),
        blip_task=config.task,
        checkpoint=ckpt,
        val_records=val_records,
        label_smoothing=config.label_smoothing if config.task == "caption" else 0.0,
        eval_options=eval_options,
    )


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Fine-tune ``config.model`` on ``config.data``; the result is a folder ``assistant.vision.load`` takes.

    With validation data, the task metric is computed at every save and the best checkpoint is what is
    saved in the end (``load_best_model_at_end``).
    """
    trainer = build_trainer(config)
    trainer.train(resume_from_checkpoint=config.resume or None)
    out = Path(config.output)
    trainer.save_model(str(out))
    state = trainer.state
    result = FinetuneResult(
        output=out,
        best_checkpoint=state.best_model_checkpoint,
        best_metric=state.best_metric,
        metric=trainer.args.metric_for_best_model,
        global_step=state.global_step,
        log_history=state.log_history,
    )
    report = {**asdict(result), "output": str(out), "config": asdict(config)}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1, default=str))
    return result

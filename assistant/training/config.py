"""The pre-training recipe as data: a YAML file maps onto these dataclasses
(see resources/models/builtin/recipe.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataSource:
    """One dataset file (any format assistant.datasets reads) or ``easy_vqa: train|test`` (the PyPI
    package). As a VQA source, ``caption_questions: true`` reads ``path`` as a *caption* set and asks the
    questions its captions support (:mod:`assistant.datasets.caption_questions`; ``kinds`` picks some)."""

    path: str | None = None
    split: str | None = None
    easy_vqa: str | None = None
    limit: int | None = None
    max_images: int | None = None  # keep only the rows of the first N distinct images
    # At most N rows with the same answer (a seeded sample): caption counts are "2" three times in four, and a
    # model trained on them answers "2" to everything.
    max_per_answer: int | None = None
    image_root: str | None = None
    caption_questions: bool = False
    kinds: list[str] | None = None  # caption_questions only: presence, colour, count, activity, place
    # Every row this many times: batches are drawn uniformly from all rows, so this weighs a small source
    # (colour questions are 6% of the caption questions) against the big ones.
    repeat: int = 1
    # A caption source of synthetic screens (assistant/datasets/screens.py): this many of each kind, drawn
    # into the run's output folder; ``path``/``split`` then name the caption set whose photos (and their
    # captions) go into the web pages and slides.
    screens: int | None = None

    def __post_init__(self) -> None:
        counts = {"screens": self.screens, "max_per_answer": self.max_per_answer, "repeat": self.repeat}
        for name, value in counts.items():
            optional = name != "repeat"  # repeat has a default of 1; the others may be left out
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data source {name} must be an integer >= 1, got {value!r}")
        if self.kinds is not None and not self.caption_questions:
            raise ValueError("data source kinds is for caption_questions sources only")
        if self.caption_questions:
            from assistant.datasets.caption_questions import KINDS

            if not self.path or self.easy_vqa:
                raise ValueError("caption_questions needs the path of a caption set (and no easy_vqa)")
            unknown = sorted(set(self.kinds or ()) - set(KINDS))
            if unknown:
                raise ValueError(f"unknown caption question kinds {unknown} (known: {list(KINDS)})")


@dataclass
class DataConfig:
    captions: list[DataSource] = field(default_factory=list)
    vqa: list[DataSource] = field(default_factory=list)
    val_captions: DataSource | None = None


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 96
    vqa_batch_size: int = 48
    itm_batch_size: int | None = None  # ITM on the first N pairs only (ITM is the costliest loss)
    itm_random_negatives: float = 0.0  # share of ITM negatives drawn uniformly, not by ITC similarity
    retrieval_every: int = 1  # ITC and ITM on every Nth step only; LM and VQA run on every step
    lr: float = 1e-4  # pretrained text weights
    lr_new: float = 4e-4  # everything initialised from scratch (cross-attention, heads, vision tokens)
    lr_cnn: float = 5e-5  # the part of the CNN that is tuned
    lr_tags: float = 0.0  # the object-tag tokens (model.num_tag_tokens > 0); 0: lr_new
    weight_decay: float = 0.05
    warmup_steps: int = 200
    cnn_trainable_blocks: int = 0  # the last N MBConv blocks (and the head conv) are tuned; 0 = frozen
    freeze_word_embeddings: bool = True
    max_text_tokens: int = 32
    amp: str = "auto"  # bf16 on CUDA, off on CPU
    augment: bool = True
    augment_scale: tuple[float, float] = (0.5, 1.0)
    label_smoothing: float = 0.1
    loss_itc: float = 1.0
    loss_itm: float = 1.0
    loss_lm: float = 1.0
    loss_vqa: float = 1.0
    # Self-critical sequence training (SCST): a CIDEr-D policy gradient on captions sampled for
    # `scst_images` training images, `scst_samples` each. Meant for a second stage that continues a
    # trained model (init: FOLDER); with it on, validation also greedy-decodes the validation images and
    # picks checkpoints by their CIDEr-D instead of the caption loss (which SCST does not lower).
    loss_scst: float = 0.0
    scst_images: int = 16
    scst_samples: int = 5
    scst_max_tokens: int = 20
    # Label smoothing makes the decoder's pure samples mostly noise: SCST samples a sharpened policy.
    scst_temperature: float = 0.7
    scst_top_p: float = 0.9
    eval_every: int = 500
    save_every: int = 500
    log_every: int = 50
    grad_clip: float = 1.0
    decode_workers: int = 4
    time_limit_s: float | None = None  # stop (and save) early when this session's wall clock runs out
    # Size `steps` (and the LR schedule) to this many seconds of training in all, re-sized after each
    # validation from the latest pace: a run that slows down (or resumes) still ends within it. Should
    # the pace collapse between two validations, the run ends (validated, saved) when the budget is spent.
    time_budget_s: float | None = None

    def loss_weights(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith("loss_")}

    def __post_init__(self) -> None:
        counts = ("steps", "batch_size", "vqa_batch_size", "retrieval_every", "max_text_tokens", "eval_every",
                  "log_every", "decode_workers", "scst_images", "scst_max_tokens")
        _check(self, counts, lambda v: v >= 1, "must be >= 1")
        _check(self, ("warmup_steps", "cnn_trainable_blocks", "weight_decay", "grad_clip", "save_every"),
               lambda v: v >= 0, "must be >= 0 (0: no gradient clipping, no periodic saves)")
        _check(self, ("lr", "lr_new", "lr_cnn", "scst_temperature"), lambda v: v > 0, "must be > 0")
        _check(self, ("label_smoothing",), lambda v: 0 <= v < 1, "must be in [0, 1)")
        _check(self, ("itm_random_negatives",), lambda v: 0 <= v <= 1, "must be in [0, 1]")
        _check(self, ("scst_top_p",), lambda v: 0 < v <= 1, "must be in (0, 1]")
        _check(self, ("itm_batch_size",), lambda v: v is None or v >= 1, "must be >= 1 (or unset)")
        _check(self, ("time_limit_s", "time_budget_s"), lambda v: v is None or v > 0,
               "must be > 0 (or unset)")
        weights = self.loss_weights()
        negative = {k: w for k, w in weights.items() if w < 0}
        if negative:
            raise ValueError(f"loss weights must be >= 0 (0 turns an objective off), got {negative}")
        if not any(weights.values()):
            raise ValueError(f"every loss weight is 0, so there is nothing to train: {weights}")
        if self.loss_scst > 0 and self.scst_samples < 2:
            raise ValueError(f"train.scst_samples must be >= 2 (the baseline), got {self.scst_samples}")


def _check(config: Any, names: tuple[str, ...], ok: Any, rule: str) -> None:
    """Refuse the recipe if a setting breaks ``rule`` (a wrong type is as wrong as a wrong value)."""
    for name in names:
        value = getattr(config, name)
        try:
            good = not isinstance(value, bool) and ok(value)
        except TypeError:
            good = False
        if not good:
            raise ValueError(f"train.{name} {rule}, got {value!r}")


@dataclass
class PretrainConfig:
    output: str = "runs/builtin"
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    init: str = "pretrained"  # MiniLM + EfficientNet-Lite, or a model folder to continue from
    model: dict[str, Any] = field(default_factory=dict)  # BuiltinBlipConfig keyword arguments
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, raw: dict[str, Any] | None) -> Any:
    raw = dict(raw or {})
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)} (known: {sorted(known)})")
    return cls(**raw)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the recipe {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"the recipe {path} must be a mapping of sections (output, data, train...), "
                         f"not a {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data_raw = raw.pop("data", {}) or {}
    data = DataConfig(
        captions=[_build(DataSource, s) for s in data_raw.get("captions", [])],
        vqa=[_build(DataSource, s) for s in data_raw.get("vqa", [])],
        val_captions=_build(DataSource, data_raw["val_captions"]) if data_raw.get("val_captions") else None,
    )
    train_raw = raw.pop("train", {}) or {}
    if "augment_scale" in train_raw:
        train_raw["augment_scale"] = tuple(train_raw["augment_scale"])
    config = _build(PretrainConfig, {**raw, "data": data, "train": _build(TrainConfig, train_raw)})
    base = Path(path).resolve().parent
    # dataset paths in a config are relative to the config file, so that a recipe works from anywhere
    for source in [*config.data.captions, *config.data.vqa, config.data.val_captions]:
        if source is not None and source.path and not Path(source.path).is_absolute():
            source.path = str((base / source.path).resolve())
    return config

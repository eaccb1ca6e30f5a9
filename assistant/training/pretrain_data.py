"""What pre-training reads: the recipe's data sources (caption sets, VQA sets, easy-vqa) turned into
:class:`TrainingData`, every image decoded once and every text tokenised once."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from assistant.datasets import caption_questions, load_caption_dataset, load_vqa_dataset, screens
from assistant.datasets.records import answer_text
from assistant.training.config import DataSource, PretrainConfig
from assistant.training.tensors import TokenTable, decode_images, tokenize_all
from assistant.vision.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    pixels: torch.Tensor  # (n_images, 3, S, S) uint8, every image of every source
    cap_image: torch.Tensor  # (n_captions,) image row of each caption
    cap_tokens: TokenTable
    vqa_image: torch.Tensor
    vqa_questions: TokenTable
    vqa_answers: TokenTable
    val_image: torch.Tensor  # image rows of the validation captions
    val_tokens: TokenTable
    cap_texts: list[str] = field(default_factory=list)  # the captions as written (SCST's references)
    val_texts: list[str] = field(default_factory=list)


def _easy_vqa(split: str) -> list[tuple[str, str, str]]:
    import easy_vqa

    questions, answers, image_ids = (
        easy_vqa.get_train_questions() if split == "train" else easy_vqa.get_test_questions()
    )
    paths = easy_vqa.get_train_image_paths() if split == "train" else easy_vqa.get_test_image_paths()
    return [(paths[i], q, a) for q, a, i in zip(questions, answers, image_ids, strict=True)]


def _vqa_rows(source: DataSource) -> list[tuple[str, str, str]]:
    if source.easy_vqa:
        rows = _easy_vqa(source.easy_vqa)
    elif source.caption_questions:
        records = load_caption_dataset(
            source.path, split=source.split, image_root=source.image_root, on_bad="skip", check_images=False
        )
        kinds = tuple(source.kinds) if source.kinds else caption_questions.KINDS
        rows = [(q.image, q.question, q.answer) for q in caption_questions.build(records, kinds=kinds)]
    else:
        records = load_vqa_dataset(
            source.path, split=source.split, image_root=source.image_root, on_bad="skip"
        )
        rows = [(r.image, r.question, r.answer) for r in records if r.answer]
    if source.max_images:
        keep = set(sorted({p for p, _, _ in rows})[: source.max_images])
        rows = [r for r in rows if r[0] in keep]
    if source.max_per_answer:
        rows = _cap_answers(rows, source.max_per_answer)
    if source.limit:
        rows = random.Random(0).sample(rows, min(source.limit, len(rows)))
    return rows * source.repeat


def _cap_answers(rows: list[tuple[str, str, str]], cap: int) -> list[tuple[str, str, str]]:
    by_answer: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_answer.setdefault(row[2], []).append(i)
    rng = random.Random(0)
    keep = {i for group in by_answer.values() for i in rng.sample(group, min(cap, len(group)))}
    return [r for i, r in enumerate(rows) if i in keep]  # the source's order, so the run's draws stay seeded


def _screen_set(source: DataSource, folder: Path) -> Path:
    """Draw (or reuse) the synthetic screens of a ``screens`` source, with photos from its caption set."""
    photos: list[screens.Photo] = []
    if source.path:
        records = load_caption_dataset(
            source.path, split=source.split, image_root=source.image_root, on_bad="skip", check_images=False
        )
        photos = [screens.Photo(r.image, r.captions[0]) for r in records if r.captions]
    log.info("drawing %d screens of each kind into %s", source.screens, folder)
    return screens.write_screen_set(folder, source.screens or 0, photos)


def _caption_rows(source: DataSource, output: Path | None = None) -> list[tuple[str, str]]:
    if source.screens:
        folder = Path(output or ".") / f"screens-{source.screens}"
        records = load_caption_dataset(_screen_set(source, folder), split="train", check_images=False)
        return [(r.image, c) for r in records for c in r.captions] * source.repeat
    records = load_caption_dataset(
        source.path, split=source.split, image_root=source.image_root, on_bad="skip", check_images=False
    )
    if source.limit:
        records = records[: source.limit]
    return [(r.image, c) for r in records for c in r.captions] * source.repeat


def _check_trainable(config: PretrainConfig, *, n_captions: int, n_questions: int) -> None:
    """Refuse a recipe in which no objective that is on has data (it would train nothing)."""
    t = config.train
    caption_losses = [k for k in ("loss_lm", "loss_itc", "loss_itm", "loss_scst") if getattr(t, k) > 0]
    if (n_captions and caption_losses) or (n_questions and t.loss_vqa > 0):
        return
    vqa_losses = ["loss_vqa"] if t.loss_vqa > 0 else []
    raise DataError(
        f"nothing to train: {n_captions} caption rows (data.captions) for {caption_losses or 'no objective'}"
        f", {n_questions} questions (data.vqa) for {vqa_losses or 'no objective'}; give data for an "
        "objective that is on"
    )


def build_data(config: PretrainConfig, tokenizer, image_size: int) -> TrainingData:
    caps = [row for s in config.data.captions for row in _caption_rows(s, Path(config.output))]
    vqas = [row for s in config.data.vqa for row in _vqa_rows(s)]
    vals = _caption_rows(config.data.val_captions) if config.data.val_captions else []
    _check_trainable(config, n_captions=len(caps), n_questions=len(vqas))
    paths = list(dict.fromkeys([p for p, _ in caps] + [p for p, _, _ in vqas] + [p for p, _ in vals]))
    row = {p: i for i, p in enumerate(paths)}
    log.info(
        "training data: %d captions, %d questions, %d val captions, %d images",
        len(caps),
        len(vqas),
        len(vals),
        len(paths),
    )
    pixels = decode_images(paths, image_size, workers=config.train.decode_workers)
    n = config.train.max_text_tokens
    empty = TokenTable(torch.zeros(0, n, dtype=torch.long), torch.zeros(0, n, dtype=torch.long))
    return TrainingData(
        pixels=pixels,
        cap_image=torch.tensor([row[p] for p, _ in caps], dtype=torch.long),
        cap_tokens=tokenize_all(tokenizer, [c for _, c in caps], n) if caps else empty,
        vqa_image=torch.tensor([row[p] for p, _, _ in vqas], dtype=torch.long),
        vqa_questions=tokenize_all(tokenizer, [q for _, q, _ in vqas], n) if vqas else empty,
        vqa_answers=tokenize_all(tokenizer, [answer_text(a) for _, _, a in vqas], 16) if vqas else empty,
        val_image=torch.tensor([row[p] for p, _ in vals], dtype=torch.long),
        val_tokens=tokenize_all(tokenizer, [c for _, c in vals], n) if vals else empty,
        cap_texts=[c for _, c in caps],
        val_texts=[c for _, c in vals],
    )

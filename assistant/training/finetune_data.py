"""Fine-tuning data: dataset records as torch Datasets of (image, text) examples, and their collator.

Images are decoded in ``__getitem__`` with the checkpoint's own image processor, so DataLoader workers
share the decoding and memory holds only the current batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from assistant.datasets import CaptionRecord, VQARecord
from assistant.datasets.records import answer_text
from assistant.vision import defaults
from assistant.vision.io import load_image

CAPTION, VQA, RETRIEVAL = "caption", "vqa", "retrieval"
FINETUNE_TASKS = (CAPTION, VQA, RETRIEVAL)


@dataclass(frozen=True)
class Example:
    """One training pair: an image (and its position among the dataset's images) and a text.

    ``question`` is set for VQA, where ``text`` is the answer.
    """

    image: str
    image_index: int
    text: str
    question: str | None = None


def caption_examples(records: Sequence[CaptionRecord]) -> list[Example]:
    """One example per (image, caption) pair."""
    return [Example(r.image, i, c) for i, r in enumerate(records) for c in r.captions if c.strip()]


def vqa_examples(records: Sequence[VQARecord]) -> list[Example]:
    """One example per question that has a reference answer (its single reference answer, with ``_``
    written as a space, as the built-in model was pre-trained)."""
    index: dict[str, int] = {}
    out = []
    for r in records:
        answer = r.answer or (r.answers[0] if r.answers else "")
        if not answer.strip():
            continue
        out.append(Example(r.image, index.setdefault(r.image, len(index)), answer_text(answer), r.question))
    return out


class PairDataset(Dataset):
    """Examples whose images are decoded and preprocessed on access."""

    def __init__(self, examples: Sequence[Example], image_processor: Any) -> None:
        self.examples = list(examples)
        self.image_processor = image_processor

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.examples[index]
        pixels = self.image_processor(images=[load_image(ex.image)], return_tensors="pt")["pixel_values"][0]
        item: dict[str, Any] = {"pixel_values": pixels, "text": ex.text, "image_index": ex.image_index}
        if ex.question is not None:
            item["question"] = ex.question
        return item


class PairCollator:
    """Stacks pixels and tokenizes the batch's texts (and questions) padded to the longest."""

    def __init__(self, tokenizer: Any, max_tokens: int = defaults.MAX_TEXT_TOKENS) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def _tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return enc["input_ids"], enc["attention_mask"]

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {
            "pixel_values": torch.stack([item["pixel_values"] for item in items]),
            "image_ids": torch.tensor([item["image_index"] for item in items], dtype=torch.long),
        }
        batch["input_ids"], batch["attention_mask"] = self._tokens([item["text"] for item in items])
        if "question" in items[0]:
            batch["question_ids"], batch["question_mask"] = self._tokens([item["question"] for item in items])
        return batch

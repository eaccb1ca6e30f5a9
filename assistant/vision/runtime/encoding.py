"""Images and texts in, model-ready tensors out, with one error per bad item instead of one per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from assistant.vision import defaults
from assistant.vision.errors import TextError, VisionError
from assistant.vision.io import ImageInput, describe_source, load_image, thumbnail
from assistant.vision.models.parts import grounded_states
from assistant.vision.runtime.checkpoint import Checkpoint


@dataclass
class ImageFeatures:
    """The vision encoder's output for a list of images: computed once, reused by every task.

    ``embeds[k]`` belongs to ``sources[rows[k]]``; images that failed to load have an entry in ``errors``
    and no row.
    """

    labels: list[str]
    embeds: torch.Tensor  # (n_ok, tokens, width)
    rows: list[int]
    errors: dict[int, VisionError] = field(default_factory=dict)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    # input index -> the ImageNet classifier's likeliest plain labels, when encode_images was given a head
    objects: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    # input index -> the picture as a small square (assistant.vision.io.thumbnail), for colour answers
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def row_of(self, index: int) -> int | None:
        """Position in ``embeds`` of input ``index`` (None if that image failed)."""
        try:
            return self._row_lookup[index]
        except KeyError:
            return None

    @property
    def _row_lookup(self) -> dict[int, int]:
        lookup = self.__dict__.get("_lookup")
        if lookup is None:
            lookup = {index: k for k, index in enumerate(self.rows)}
            self.__dict__["_lookup"] = lookup
        return lookup

    def select(self, indices: Sequence[int]) -> ImageFeatures:
        """The features of some inputs (by input position), in the given order."""
        labels, rows, errors, keep, objects, thumbnails = [], [], {}, [], {}, {}
        for new, index in enumerate(indices):
            labels.append(self.labels[index])
            if index in self.objects:
                objects[new] = self.objects[index]
            if index in self.thumbnails:
                thumbnails[new] = self.thumbnails[index]
            row = self.row_of(index)
            if row is None:
                errors[new] = self.errors[index]
            else:
                rows.append(new)
                keep.append(row)
        embeds = self.embeds[keep] if keep else self.embeds[:0]
        return ImageFeatures(labels, embeds, rows, errors, {}, objects, thumbnails)


def batched(items: Sequence, size: int) -> Iterator[tuple[int, Sequence]]:
    if size < 1:  # a negative size would yield nothing: every input silently dropped
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def pixel_values(ckpt: Checkpoint, images: list) -> torch.Tensor:
    batch = ckpt.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return batch.to(ckpt.device, ckpt.dtype)


@torch.inference_mode()
def encode_images(
    ckpt: Checkpoint,
    sources: Sequence[ImageInput],
    *,
    batch_size: int = defaults.BATCH_SIZE,
    max_pixels: int = defaults.MAX_IMAGE_PIXELS,
    on_batch: object = None,
    classify: Callable[[list], tuple[torch.Tensor, list[list[tuple[str, float]]]]] | None = None,
) -> ImageFeatures:
    """Decode, preprocess and run the vision encoder on ``sources`` (one pass per image).

    ``classify`` (see :func:`assistant.vision.tasks.signals.image_classifier`) names what the backbone's
    ImageNet classifier sees in each decoded image; its answers land in ``ImageFeatures.objects``. For the
    built-in model it reads the same CNN pass as the encoder (``trunk_features``), so it costs one small
    matrix product.
    """
    labels = [describe_source(s) for s in sources]
    errors: dict[int, VisionError] = {}
    sizes: dict[int, tuple[int, int]] = {}
    chunks: list[torch.Tensor] = []
    rows: list[int] = []
    objects: dict[int, list[tuple[str, float]]] = {}
    thumbnails: dict[int, np.ndarray] = {}
    for start, chunk in batched(sources, batch_size):
        images, ok = [], []
        for offset, source in enumerate(chunk):
            index = start + offset
            try:
                image = load_image(source, max_pixels=max_pixels)
            except VisionError as exc:
                errors[index] = exc
                continue
            images.append(image)
            ok.append(index)
            sizes[index] = image.size
            thumbnails[index] = thumbnail(image)
        if images:
            # The fast path bounds activation memory with small vision calls; a matmul over one image's
            # tokens already runs at full speed. The float32 path keeps transformers' batches.
            step = defaults.FAST_VISION_BATCH if ckpt.extras.get("fast") else len(images)
            for offset, part in batched(images, step):
                if classify is None:
                    chunks.append(ckpt.model.vision_model(pixel_values=pixel_values(ckpt, list(part)))[0])
                    continue
                embeds, named = classify(list(part))
                chunks.append(embeds)
                for index, found in zip(ok[offset : offset + len(part)], named, strict=True):
                    objects[index] = found
            rows.extend(ok)
        if callable(on_batch):
            on_batch(len(chunk))
    embeds = torch.cat(chunks) if chunks else torch.empty(0, 0, 0, device=ckpt.device, dtype=ckpt.dtype)
    return ImageFeatures(labels, embeds, rows, errors, sizes, objects, thumbnails)


def check_text(text: str, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TextError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise TextError(f"{what} is empty")
    if len(text) > defaults.MAX_TEXT_CHARS:
        raise TextError(f"{what} is {len(text)} characters long; the limit is {defaults.MAX_TEXT_CHARS}")
    return text


def tokenize(ckpt: Checkpoint, texts: Sequence[str], *, max_tokens: int = defaults.MAX_TEXT_TOKENS):
    enc = ckpt.tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_tokens, return_tensors="pt"
    )
    return enc["input_ids"].to(ckpt.device), enc["attention_mask"].to(ckpt.device)


def ground_texts(
    ckpt: Checkpoint, image_embeds: torch.Tensor, texts: Sequence[str], what: str = "text"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and tokenize ``texts``, then run them through the image-grounded text encoder
    (:func:`assistant.vision.models.parts.grounded_states`): their token states and attention mask."""
    ids, mask = tokenize(ckpt, [check_text(t, what) for t in texts])
    return grounded_states(ckpt.model, image_embeds, ids, mask), mask

"""Tiny random-weight BLIP checkpoints, built offline, for tests, benchmarks and demos.

They are saved with ``save_pretrained`` and loaded back through :func:`assistant.vision.load`, the same code
path
as a real checkpoint. Their outputs are meaningless but deterministic.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertTokenizerFast
from transformers.models.blip import (
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
)

from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel

_WORDS = [
    "a",
    "an",
    "the",
    "dog",
    "dogs",
    "cat",
    "cats",
    "man",
    "woman",
    "child",
    "children",
    "boy",
    "girl",
    "people",
    "person",
    "red",
    "blue",
    "green",
    "white",
    "black",
    "yellow",
    "brown",
    "small",
    "big",
    "little",
    "two",
    "three",
    "on",
    "in",
    "at",
    "with",
    "of",
    "and",
    "is",
    "are",
    "running",
    "sitting",
    "standing",
    "playing",
    "grass",
    "water",
    "beach",
    "snow",
    "street",
    "park",
    "field",
    "ball",
    "car",
    "bike",
    "tree",
    "house",
    "room",
    "table",
    "chair",
    "bed",
    "photo",
    "picture",
    "picture",
    "of",
    "what",
    "how",
    "many",
    "color",
    "where",
    "who",
    "yes",
    "no",
    "there",
    "this",
    "that",
    "it",
    "its",
    "his",
    "her",
    "their",
    "jumps",
    "jump",
    "sits",
    "looking",
    "wearing",
    "shirt",
    "hat",
    "toy",
    "front",
    "near",
    "next",
    "to",
    "ocean",
    "sky",
    "road",
    "building",
    "wall",
    "floor",
    "window",
    "door",
    "?",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KINDS = ("caption", "vqa", "itm", "builtin")


def tiny_vocab() -> dict[str, int]:
    tokens = SPECIAL + sorted(set(_WORDS)) + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens += list("abcdefghijklmnopqrstuvwxyz0123456789.,!'-")
    tokens += ["[DEC]", "[ENC]"]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def tiny_tokenizer() -> BertTokenizerFast:
    tok = BertTokenizerFast(vocab=tiny_vocab(), do_lower_case=True, bos_token="[DEC]")
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def _text_config(vocab: dict[str, int], hidden: int) -> dict[str, object]:
    return {
        "vocab_size": len(vocab),
        "hidden_size": hidden,
        "encoder_hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": vocab["[DEC]"],
        "pad_token_id": vocab["[PAD]"],
        "sep_token_id": vocab["[SEP]"],
        "eos_token_id": vocab["[SEP]"],
        "initializer_range": 0.02,
    }


@torch.no_grad()
def _calibrate_batchnorm(trunk: torch.nn.Module, image_size: int) -> None:
    """Give a randomly initialised CNN's BatchNorm layers the statistics of its own activations.

    With the default statistics (mean 0, variance 1) the activations of a random 16-block CNN shrink to
    ~1e-10 and every image looks the same; tests need images to stay distinguishable.
    """
    norms = [m for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    trunk.train()
    for _ in range(2):
        trunk(torch.rand(8, 3, image_size, image_size) * 2 - 1)
    trunk.eval()
    for m in norms:
        m.momentum = 0.01


def make_tiny_checkpoint(kind: str, path: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """Save a tiny random ``kind`` checkpoint (caption, vqa, itm or builtin) to ``path``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    hidden = 32
    if kind == "builtin":
        config = BuiltinBlipConfig(
            text_config=_text_config(vocab, hidden),
            image_size=image_size,
            vision_hidden_size=hidden,
            vision_num_layers=1,
            vision_num_heads=2,
            image_text_hidden_size=16,
        )
        model = BuiltinBlipModel(config)
        _calibrate_batchnorm(model.vision_model.trunk, image_size)
        processor = BlipImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_mean=config.image_mean,
            image_std=config.image_std,
        )
    else:
        config = BlipConfig(
            text_config=_text_config(vocab, hidden),
            vision_config={
                "hidden_size": hidden,
                "intermediate_size": 2 * hidden,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": image_size,
                "patch_size": 8,
                "initializer_range": 0.02,
            },
            projection_dim=16,
            image_text_hidden_size=16,
            initializer_range=0.02,
        )
        cls = {
            "caption": BlipForConditionalGeneration,
            "vqa": BlipForQuestionAnswering,
            "itm": BlipForImageTextRetrieval,
        }[kind]
        model = cls(config)
        processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return path

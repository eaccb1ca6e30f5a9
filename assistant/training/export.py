"""Install a pre-trained built-in model into ``resources/models/builtin``, stored in float16 (half the size;
the engine loads it back in the dtype the user asks for)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import BertTokenizerFast
from transformers.models.blip import BlipImageProcessorPil

from assistant import resources
from assistant.vision.models.builtin import BuiltinBlipModel


def install_builtin(source: str | Path, target: str | Path | None = None) -> Path:
    """Copy the model folder ``source`` (a ``save_pretrained`` output) to ``target`` in float16.

    The model card, training notes and recipe that live beside the weights are kept, and so are the
    honesty calibration (``honesty.json``) and the backbone's ImageNet head (``imagenet/``, issue #22)."""
    source = Path(source)
    target = Path(target) if target is not None else resources.builtin_model_dir()
    model = BuiltinBlipModel.from_pretrained(source, dtype=torch.float32, use_safetensors=True)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.float16).save_pretrained(staging)
    BertTokenizerFast.from_pretrained(source).save_pretrained(staging)
    BlipImageProcessorPil.from_pretrained(source).save_pretrained(staging)
    for doc in [*target.glob("*.md"), *target.glob("*.yaml"), *target.glob("honesty.json")]:
        shutil.copy2(doc, staging / doc.name)
    if (target / "imagenet").is_dir():
        shutil.copytree(target / "imagenet", staging / "imagenet")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target

"""Install a pre-trained built-in model into the package, stored in float16 (half the size; blipkit loads
it back in the dtype the user asks for)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import BertTokenizerFast
from transformers.models.blip import BlipImageProcessorPil

from blipkit.models.builtin import BuiltinBlipModel
from blipkit.runtime.resolve import BUILTIN_DIR


def install_builtin(source: str | Path, target: str | Path = BUILTIN_DIR) -> Path:
    """Copy the model folder ``source`` (a ``save_pretrained`` output) to ``target`` in float16."""
    source, target = Path(source), Path(target)
    model = BuiltinBlipModel.from_pretrained(source, dtype=torch.float32, use_safetensors=True)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.float16).save_pretrained(staging)
    BertTokenizerFast.from_pretrained(source).save_pretrained(staging)
    BlipImageProcessorPil.from_pretrained(source).save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target

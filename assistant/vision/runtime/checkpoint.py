"""Load a BLIP checkpoint and describe what it can do.

Every checkpoint, Salesforce's or the engine's built-in, is seen through one :class:`Checkpoint`: the model,
its tokenizer and image processor, and the set of tasks its heads support. Task code only touches the
sub-modules that all BLIP models name alike (``vision_model``, ``text_encoder``, ``text_decoder``,
``vision_proj``, ``text_proj``, ``itm_head``), which is what lets one implementation serve them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import BertTokenizerFast, PreTrainedModel
from transformers.models.blip import (
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
)

from assistant.vision import defaults
from assistant.vision.errors import ModelNotFoundError, UnsupportedModelError
from assistant.vision.models.builtin import BuiltinBlipModel
from assistant.vision.runtime.resolve import env_flag, portable_name

CAPTION, VQA, ITM, ITC = "caption", "vqa", "itm", "itc"
TASKS = (CAPTION, VQA, ITM, ITC)

# architecture name in config.json -> (class, the tasks its heads support)
ARCHITECTURES: dict[str, tuple[type[PreTrainedModel], frozenset[str]]] = {
    "BlipForConditionalGeneration": (BlipForConditionalGeneration, frozenset({CAPTION})),
    "BlipForQuestionAnswering": (BlipForQuestionAnswering, frozenset({VQA})),
    "BlipForImageTextRetrieval": (BlipForImageTextRetrieval, frozenset({ITM, ITC})),
    "BuiltinBlipModel": (BuiltinBlipModel, frozenset(TASKS)),
}
# what `task=` asks for -> the capability it needs
TASK_ALIASES = {
    "caption": CAPTION,
    "captioning": CAPTION,
    "image-to-text": CAPTION,
    "vqa": VQA,
    "ask": VQA,
    "visual-question-answering": VQA,
    "itm": ITM,
    "match": ITM,
    "itc": ITC,
    "embed": ITC,
    "retrieval": ITM,
}

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class Checkpoint:
    """A loaded model with its tokenizer, image processor and capabilities."""

    name: str
    path: Path
    model: PreTrainedModel
    tokenizer: BertTokenizerFast
    image_processor: BlipImageProcessorPil
    tasks: frozenset[str]
    device: torch.device
    dtype: torch.dtype
    architecture: str
    extras: dict[str, object] = field(default_factory=dict)

    def require(self, task: str) -> None:
        if task not in self.tasks:
            raise UnsupportedModelError(
                f"{self.name} ({self.architecture}) cannot do {task!r}: its heads support "
                f"{', '.join(sorted(self.tasks))}. Pick a checkpoint that has that head "
                "(e.g. `builtin`, which has them all)."
            )

    @property
    def config(self):
        return self.model.config

    @property
    def text_config(self):
        return self.model.config.text_config

    @property
    def fingerprint(self) -> dict[str, object]:
        """What made the embeddings: stored with an index so that models are never mixed, and so that
        searching it later, from any folder, loads the same model."""
        proc = self.image_processor
        return {
            "model": portable_name(self.name, self.path),
            "architecture": self.architecture,
            "image_size": [proc.size["height"], proc.size["width"]],
            "image_mean": list(proc.image_mean),
            "image_std": list(proc.image_std),
            "embed_dim": getattr(self.config, "image_text_hidden_size", None),
            "weights": self.extras.get("weights_id"),
        }


def read_architecture(path: Path) -> str:
    config = json.loads((path / "config.json").read_text())
    archs = config.get("architectures") or []
    known = [a for a in archs if a in ARCHITECTURES]
    if not known:
        raise UnsupportedModelError(
            f"{path} holds a {archs or config.get('model_type')!r} model; the engine runs BLIP checkpoints "
            f"({', '.join(ARCHITECTURES)})"
        )
    return known[0]


def use_fast(fast: bool | None, device: str | torch.device, dtype: torch.dtype) -> bool:
    """Whether a load runs the fast path. ``None`` (the default everywhere) means: off for a non-float32
    ``dtype`` (the user chose the precision), else ``BLIP_ASSISTANT_FAST`` if it is set (``0``/``1``), else
    on a CPU where it was measured to pay at the same quality (tests/benchmarks/README.md): one with
    bfloat16 matrix units, or one with int8 kernels. On GPUs the plan is a no-op."""
    if fast is not None:
        return fast
    if dtype != torch.float32:
        return False
    setting = env_flag(defaults.FAST_ENV)
    if setting is not None:
        return setting
    if torch.device(device).type != "cpu":
        return False
    from assistant.vision.runtime.fast import fast_by_default

    return fast_by_default()


def _own_buffers(model: torch.nn.Module) -> None:
    """Copy the buffers (position ids and the like) that still view the memory-mapped weights file.

    Weights converted on load (float16 to float32) are copies, but a buffer stored in its own dtype is a
    view into the mapping, and that one view keeps the whole file mapped: 68 MB of resident memory for
    the built-in model, held all day by an app that sits in the tray.
    """
    for module in model.modules():
        for name, buf in module._buffers.items():
            if buf is not None:
                module._buffers[name] = buf.clone()


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}") from None


def _usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refused up front when this machine cannot run it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"not a device: {device!r}; use cpu, cuda, cuda:1, mps...") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this torch build or machine has no usable CUDA GPU; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: Apple's MPS backend is not available here; use cpu")
    return dev


def load_checkpoint(
    name: str,
    path: Path,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    fast: bool | None = None,
) -> Checkpoint:
    torch_dtype = _torch_dtype(dtype)
    device = _usable_device(device)
    architecture = read_architecture(path)
    cls, tasks = ARCHITECTURES[architecture]
    fast = use_fast(fast, device, torch_dtype)
    if not any(path.glob("*.safetensors")):
        raise ModelNotFoundError(f"{path} has no .safetensors weights; the engine loads safetensors only")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per weight file is noise for a command-line user
    extras: dict[str, object] = {}
    if fast:  # assistant.vision.runtime.fast: low-precision matmuls, fused attention, no float32 copy
        from assistant.vision.runtime.fast import load_fast

        if torch_dtype != torch.float32:
            raise ValueError("fast=True picks each layer's precision itself; leave dtype at float32")
        model, plan = load_fast(cls, path, device=device)
        extras["fast"] = plan.describe()
    else:
        model = cls.from_pretrained(path, dtype=torch_dtype, use_safetensors=True)
        _own_buffers(model)
    model.to(device).eval()
    tokenizer = BertTokenizerFast.from_pretrained(path)
    image_processor = BlipImageProcessorPil.from_pretrained(path)
    weights = sorted(path.glob("*.safetensors"))
    weights_id = f"{weights[0].stat().st_size}-{int(weights[0].stat().st_mtime)}" if weights else None
    return Checkpoint(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,
        image_processor=image_processor,
        tasks=tasks,
        device=torch.device(device),
        dtype=torch_dtype,
        architecture=architecture,
        extras={"weights_id": weights_id, **extras},
    )

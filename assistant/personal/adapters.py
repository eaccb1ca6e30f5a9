"""Low-rank adapters (LoRA) on a BLIP caption decoder: the small set of weights a personal model is.

Any checkpoint with BLIP's ``text_decoder`` takes them (the built-in model and Salesforce's alike, by
module name), so one implementation serves both and no extra package is needed. Training wraps the
decoder's linear layers; applying a finished personal model merges ``W += scale * B @ A`` into the
weights, so describing with it costs nothing more than with the base model.

On the built-in model the decoder shares its cross-attention and feed-forward layers with the text
encoder, so a merged personal model also shifts questions and matching a little; captions are what it
is trained and measured for.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# Which linear layers of the decoder get an adapter. Self- and cross-attention and the feed-forward
# layers of every decoder layer, and the LM head's transform: the name of a dog is a word the decoder
# must choose from what cross-attention reads in the image.
TARGETS = re.compile(
    r"^text_decoder\.(bert\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|crossattention\.self\.(query|key|value)|crossattention\.output\.dense|intermediate\.dense"
    r"|output\.dense)|cls\.predictions\.transform\.dense)$"
)


# "cross": only the layers that read the image (cross-attention) and the LM head's transform: the link from
# what is seen to the user's words, with the decoder's own language (self-attention, feed-forward) kept.
TARGET_SETS = {
    "all": TARGETS,
    "cross": re.compile(r"^text_decoder\.(bert\.encoder\.layer\.\d+\.crossattention\.(self\.(query|key|value)"
                        r"|output\.dense)|cls\.predictions\.transform\.dense)$"),
}


class LoraLinear(nn.Module):
    """``base(x) + scale * (x @ A^T) @ B^T``; B starts at zero, so a fresh adapter changes nothing."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:  # transformers reads .weight.dtype of some layers
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale


def target_names(model: nn.Module, which: str = "all") -> list[str]:
    """The decoder's linear layers that take an adapter, each named once (shared layers appear under
    the decoder's name only)."""
    seen: set[int] = set()
    names = []
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.Linear) and TARGET_SETS[which].match(name) and id(module) not in seen:
            seen.add(id(module))
            names.append(name)
    if not names:
        raise ValueError("this model has no BLIP caption decoder to personalize")
    return names


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` wherever the module called ``name`` sits (a shared layer sits in two places)."""
    old = model.get_submodule(name)
    for parent in list(model.modules()):  # listed first: the new module holds the old one itself
        if parent is new:
            continue
        for child_name, child in list(parent.named_children()):
            if child is old:
                setattr(parent, child_name, new)


def wrap(model: nn.Module, rank: int, alpha: float, seed: int = 0,
         which: str = "all") -> dict[str, LoraLinear]:
    """Add fresh adapters to ``model`` (in place); freeze everything else; return them by layer name."""
    model.requires_grad_(False)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    adapters: dict[str, LoraLinear] = {}
    try:
        for name in target_names(model, which):
            base = model.get_submodule(name)
            adapter = LoraLinear(base, rank, alpha).to(base.weight.device)
            _replace(model, name, adapter)
            adapters[name] = adapter
    finally:
        torch.random.set_rng_state(generator_state)
    return adapters


def unwrap(model: nn.Module, adapters: dict[str, LoraLinear]) -> None:
    """Put the base layers back, unchanged."""
    for adapter in adapters.values():
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if child is adapter:
                    setattr(parent, child_name, adapter.base)


def tensors(adapters: dict[str, LoraLinear]) -> dict[str, torch.Tensor]:
    """The trained weights, as they are saved: ``<layer>.lora_a`` and ``<layer>.lora_b``."""
    out = {}
    for name, adapter in adapters.items():
        out[f"{name}.lora_a"] = adapter.lora_a.detach().float().contiguous().clone()
        out[f"{name}.lora_b"] = adapter.lora_b.detach().float().contiguous().clone()
    return out


def load_tensors(adapters: dict[str, LoraLinear], values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, adapter in adapters.items():
            adapter.lora_a.copy_(values[f"{name}.lora_a"])
            adapter.lora_b.copy_(values[f"{name}.lora_b"])


def check(model: nn.Module, values: dict[str, torch.Tensor], rank: int, which: str = "all") -> None:
    """Refuse adapter weights that do not fit ``model`` or are not finite (a damaged file)."""
    names = target_names(model, which)
    expected = {f"{n}.lora_{p}" for n in names for p in "ab"}
    if set(values) != expected:
        missing, extra = sorted(expected - set(values)), sorted(set(values) - expected)
        raise ValueError(f"the weights do not fit this model (missing {missing[:2]}, unexpected {extra[:2]})")
    for name in names:
        layer = model.get_submodule(name)
        a, b = values[f"{name}.lora_a"], values[f"{name}.lora_b"]
        if a.shape != (rank, layer.in_features) or b.shape != (layer.out_features, rank):
            raise ValueError(f"the weights of {name} have the wrong shape")
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise ValueError(f"the weights of {name} are not finite numbers")


def merge(model: nn.Module, values: dict[str, torch.Tensor], rank: int, alpha: float,
          which: str = "all") -> None:
    """Add the adapters' product into the model's own weights (in place, no wrappers left)."""
    check(model, values, rank, which)
    scale = alpha / rank
    with torch.no_grad():
        for name in target_names(model, which):
            layer = model.get_submodule(name)
            delta = values[f"{name}.lora_b"].float() @ values[f"{name}.lora_a"].float() * scale
            layer.weight.add_(delta.to(layer.weight.dtype))

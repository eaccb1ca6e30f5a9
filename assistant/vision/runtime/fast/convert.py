"""Applying a :class:`FastPlan` to a model: which Linear layers become which fast layers, which weights stay
in bfloat16, and the in-place conversion of a model already in memory."""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from assistant.vision.runtime.fast.attention import FastBlipAttention, FastBlipTextSelfAttention
from assistant.vision.runtime.fast.linear import BF16, FP32, INT8, KEEP, RESCORED, make_linear
from assistant.vision.runtime.fast.plan import ABSORBED, FastPlan, usable

# Linear layers whose output is added to the residual stream or read as logits: they return float32.
_FLOAT32_OUTPUTS = ("attention.output.dense", "crossattention.output.dense", "output.dense",
                    "self_attn.projection", "mlp.fc2", "predictions.transform.dense", "predictions.decoder")
# Small heads whose precision matters more than their cost (ITC projections, the ITM head).
_LEFT_ALONE = ("vision_proj", "text_proj", "itm_head")
# Text-side layers that read the image tokens: as wide as the vision encoder's, so they follow plan.image.
_IMAGE_KV = ("crossattention.self.key", "crossattention.self.value")


def _role(name: str) -> str | None:
    """Which part of the plan a Linear layer follows: image, text, head, or none (left alone)."""
    if name.split(".")[-1] in _LEFT_ALONE:
        return None
    if name.startswith("vision_model.encoder.") or name.endswith(_IMAGE_KV):
        return "image"
    if name.endswith(".cls.predictions.decoder"):
        return "head"
    if name.startswith(("text_encoder.", "text_decoder.")):
        return "text"
    return None


def stored_dtypes(model: nn.Module, plan: FastPlan) -> dict[str, torch.dtype]:
    """Weights outside the replaced Linear layers that the plan keeps in bfloat16: name -> dtype.

    The word embeddings (a lookup: each row is read once per token, then added to float32 position
    embeddings, so the stream stays float32), and the key/value weights that absorbed cross-attention
    multiplies directly. At BLIP-base size these are 94 MB and 28 MB per text tower in float32.
    """
    found: dict[str, torch.dtype] = {}
    absorbed = plan.sdpa and plan.cross == ABSORBED and plan.image == BF16
    for name, module in model.named_modules(remove_duplicate=False):
        words = plan.text == BF16 and isinstance(module, nn.Embedding) and name.endswith("word_embeddings")
        image_kv = absorbed and type(module) is nn.Linear and name.endswith(_IMAGE_KV)
        if words or image_kv:
            found[f"{name}.weight"] = torch.bfloat16
    return found


class WideEmbedding(nn.Embedding):
    """A lookup table kept in bfloat16 whose rows come out in float32, so the text stream stays float32."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input).float()


def widen_embeddings(model: nn.Module, stored: dict[str, torch.dtype]) -> None:
    """Give the embeddings that :func:`stored_dtypes` keeps in bfloat16 their float32 output."""
    for name, module in model.named_modules(remove_duplicate=False):
        if type(module) is nn.Embedding and f"{name}.weight" in stored:
            module.__class__ = WideEmbedding


def linear_formats(model: nn.Module, plan: FastPlan) -> dict[str, tuple[str, torch.dtype | None, bool]]:
    """Which Linear layers to replace: name -> (format, output dtype, GELU fused in)."""
    gelu_fed = _gelu_fed(model)
    decoder = getattr(model, "text_decoder", None)
    in_decoder = {id(m) for m in decoder.modules()} if isinstance(decoder, nn.Module) else set()
    chosen: dict[str, tuple[str, torch.dtype | None, bool]] = {}
    for name, module in model.named_modules():
        role = _role(name) if type(module) is nn.Linear else None
        if role == "text" and name.startswith("text_encoder.") and id(module) not in in_decoder:
            role = "encoder"
        fmt = getattr(plan, role) if role else KEEP
        if fmt == KEEP or (plan.sdpa and plan.cross == ABSORBED and name.endswith(_IMAGE_KV)):
            continue  # absorbed cross-attention reads the key/value weights as they are
        # BLIP's eager attention (sdpa off) multiplies float32 probabilities: everything returns float32
        out = torch.float32 if name.endswith(_FLOAT32_OUTPUTS) or not plan.sdpa else None
        if role == "head" and fmt in (BF16, INT8):
            fmt = RESCORED + fmt
        chosen[name] = (fmt, out, fmt in (BF16, FP32) and name in gelu_fed)
    return chosen


def _gelu_fed(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Linear layers followed by an exact GELU: name -> (module holding the GELU, its attribute).

    oneDNN applies the GELU as the matmul's epilogue, saving a pass over the widest activations.
    """
    found: dict[str, tuple[nn.Module, str]] = {}
    for name, module in model.named_modules():
        for linear, act in (("fc1", "activation_fn"), ("dense", "intermediate_act_fn")):
            fn = getattr(module, act, None)
            if isinstance(getattr(module, linear, None), nn.Linear) and _is_exact_gelu(fn):
                found[f"{name}.{linear}"] = (module, act)
    return found


def _is_exact_gelu(fn: object) -> bool:
    from transformers.activations import GELUActivation

    return isinstance(fn, GELUActivation) and getattr(fn, "act", None) is nn.functional.gelu


def swap_attention(model: nn.Module, plan: FastPlan) -> None:
    """Give BLIP's attention modules their fused forward (in place; parameters untouched)."""
    if not plan.sdpa:
        return
    for module in model.modules():
        if type(module) is BlipAttention:
            module.__class__ = FastBlipAttention
        elif type(module) is BlipTextSelfAttention:
            module.__class__ = FastBlipTextSelfAttention
            module.cross_mode = plan.cross
            module.image_dtype = torch.bfloat16 if plan.image == BF16 else torch.float32


def _parents(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """id(module) -> every (parent, attribute) holding it (the built-in model shares text layers)."""
    found: dict[int, list[tuple[nn.Module, str]]] = {}
    for parent in model.modules():
        for attr, child in parent._modules.items():
            if child is not None:
                found.setdefault(id(child), []).append((parent, attr))
    return found


def apply_fast(model: nn.Module, plan: FastPlan) -> nn.Module:
    """Convert an already-loaded float32 model in place (layer by layer, freeing each float32 weight).

    :func:`load_fast` is the low-memory way; this one serves models that are already in memory.
    """
    plan = usable(plan)
    swap_attention(model, plan)
    formats = linear_formats(model, plan)
    gelu_fed = _gelu_fed(model)
    parents = _parents(model)
    modules = dict(model.named_modules())
    stored = stored_dtypes(model, plan)
    for name, dtype in stored.items():
        param = model.get_parameter(name)
        param.data = param.data.to(dtype)
    widen_embeddings(model, stored)
    for name, (fmt, out, gelu) in formats.items():
        old = modules[name]
        new = make_linear(old.weight.data, None if old.bias is None else old.bias.data, fmt, out, gelu)
        _install(parents, old, new, gelu_fed.get(name) if gelu else None)
    fold_batchnorm(model, plan)
    return model.eval().requires_grad_(False)


def fold_batchnorm(model: nn.Module, plan: FastPlan) -> None:
    """Fold BatchNorms into their convolutions in every CNN of ``model`` that can (the built-in
    model's EfficientNet-Lite trunk), when the plan already trades the image side's last bits for speed
    (``fp32`` and ``keep`` promise the default path's numbers)."""
    if plan.image not in (BF16, INT8):
        return
    for module in list(model.modules()):
        fold = getattr(module, "fold_batchnorm", None)
        if callable(fold):
            fold()


def _install(parents: dict[int, list[tuple[nn.Module, str]]], old: nn.Module, new: nn.Module,
             fused_act: tuple[nn.Module, str] | None) -> None:
    """Put ``new`` wherever ``old`` was; a fused GELU's own module becomes the identity."""
    for parent, attr in parents.get(id(old), []):
        setattr(parent, attr, new)
    if fused_act is not None:
        holder, attr = fused_act
        setattr(holder, attr, nn.Identity())

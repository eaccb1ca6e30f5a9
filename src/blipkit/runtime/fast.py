"""blipkit's CPU fast path: BLIP's own computation with cheaper kernels and less memory.

``blipkit.load(..., fast=True)`` (``--fast`` on the commands) loads a checkpoint through :func:`load_fast`
with the :func:`default_plan` for this machine. The levers, each measured by ``benchmarks/run.py``
(docs/performance.md):

- **bfloat16 matmuls** on CPUs with AMX or AVX512-BF16, where oneDNN runs them several times faster than
  float32: the vision encoder, and the text layers (decoding reads every weight at every step, so half the
  bytes is nearly half the time). Weights are packed once for oneDNN at load time; the residual stream,
  LayerNorms and softmaxes stay float32; an exact GELU is fused into the matmul that feeds it.
- **The LM head as a scan plus exact re-scoring.** All 30k logits come from an int8 (or bf16) matmul, then
  the top 16 of each row are recomputed in float32 from the tied word embedding, so greedy and beam
  choices are float32's.
- **Fused attention** (``scaled_dot_product_attention``) instead of BLIP's matmul-softmax-matmul.
- **Absorbed cross-attention.** transformers projects keys and values for the 577 image tokens of every
  *beam*, keeps them for all 12 layers and copies them at each beam-search step (and blipkit's confidence
  pass projects them again). Folding those projections into the query and the output
  (``q·W_k x = (W_kᵀq)·x``) lets every layer attend to the image tokens themselves: nothing per image is
  projected or kept, and a decoding step reads the image once instead of 12 layers of keys and values.
- **No float32 copy of the model.** Weights stream from the safetensors file one tensor at a time, straight
  into their fast form, each read buffer unmapped as soon as it is converted, so peak memory is about the
  size of the fast model itself.
- **Less memory where precision matters least.** The word embeddings and the absorbed key/value weights
  are kept in bfloat16 (their outputs in float32); the text encoder's own layers, which run once per text
  (ITC, ITM, VQA's question) rather than once per generated token, are int8; the vision encoder runs one
  image at a time (``defaults.FAST_VISION_BATCH``). Together these took BLIP-base VQA, the largest model
  (two 12-layer BERTs), from 1,474 MB to under 1.2 GB peak.

int8 dynamic quantization of the decoder's layers was measured and rejected (greedy tokens agree less
often). ``blipkit.load``'s default runs this path on CPUs with bfloat16 units, where the benchmark's
quality guard holds (:func:`blipkit.runtime.checkpoint.use_fast`). Outputs match the default path to
within bfloat16 rounding; the benchmark reports how often greedy captions agree with float32 token for
token.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import sys
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import EncoderDecoderCache
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from blipkit.errors import ModelNotFoundError

# Weight formats for a group of Linear layers.
BF16, INT8, FP32, KEEP = "bf16", "int8", "fp32", "keep"
FORMATS = (BF16, INT8, FP32, KEEP)
RESCORED = "rescored-"  # the LM head in bf16 or int8 is a scan whose top logits are recomputed exactly
# How text attends to image tokens (see FastPlan).
ABSORBED, SHARED, CACHED = "absorbed", "shared", "cached"
CROSS_MODES = (ABSORBED, SHARED, CACHED)

# Linear layers whose output is added to the residual stream or read as logits: they return float32.
_FLOAT32_OUTPUTS = ("attention.output.dense", "crossattention.output.dense", "output.dense",
                    "self_attn.projection", "mlp.fc2", "predictions.transform.dense", "predictions.decoder")
# Small heads whose precision matters more than their cost (ITC projections, the ITM head).
_LEFT_ALONE = ("vision_proj", "text_proj", "itm_head")
# Text-side layers that read the image tokens: as wide as the vision encoder's, so they follow plan.image.
_IMAGE_KV = ("crossattention.self.key", "crossattention.self.value")


@dataclass(frozen=True)
class FastPlan:
    """What the fast path changes. ``image``: the vision encoder's and the cross-attention key/value
    matmuls (hundreds of rows per image); ``text``: the decoder's other matmuls (a few rows per decoding
    step); ``encoder``: the text encoder's layers that the decoder does not share (run once per text, for
    ITC, ITM and VQA's question); ``head``: the LM head. Each is one of ``bf16``, ``int8``, ``fp32``
    (packed float32) or ``keep`` (untouched). ``sdpa``: fused attention. ``cross`` (with ``sdpa``), how
    text attends to the image tokens: ``absorbed`` folds the key/value projections into the query and the
    output (no per-image keys/values at all), ``shared`` computes keys/values once per distinct image,
    ``cached`` is transformers' per-row cache."""

    image: str = BF16
    text: str = BF16
    encoder: str = INT8
    head: str = INT8  # the LM head: bf16/int8 mean a scan whose top candidates are re-scored in fp32
    sdpa: bool = True
    cross: str = ABSORBED

    def __post_init__(self) -> None:
        for value in (self.image, self.text, self.encoder, self.head):
            if value not in FORMATS:
                raise ValueError(f"fast-path format must be one of {FORMATS}, not {value!r}")
        if self.cross not in CROSS_MODES:
            raise ValueError(f"cross must be one of {CROSS_MODES}, not {self.cross!r}")

    def describe(self) -> dict[str, Any]:
        return {"image": self.image, "text": self.text, "encoder": self.encoder, "head": self.head,
                "sdpa": self.sdpa, "cross": self.cross}


# --- what this machine can run ----------------------------------------------------------------------
_SUPPORT: dict[str, bool] = {}


def _probe(fmt: str) -> bool:
    """Whether ``fmt`` builds and computes correctly here (checked once, on a tiny layer)."""
    if fmt in (KEEP,):
        return True
    if fmt not in _SUPPORT:
        try:
            gen = torch.Generator().manual_seed(0)
            weight, bias = torch.randn(16, 32, generator=gen), torch.randn(16, generator=gen)
            x = torch.randn(3, 32, generator=gen)
            layer = make_linear(weight, bias, fmt, torch.float32)
            with torch.inference_mode():
                err = (layer(x) - F.linear(x, weight, bias)).abs().max().item()
            _SUPPORT[fmt] = err < 0.25
        except (RuntimeError, AttributeError, NotImplementedError, ImportError):
            _SUPPORT[fmt] = False
    return _SUPPORT[fmt]


def has_fast_bf16() -> bool:
    """True on CPUs whose matrix units run bfloat16 natively (AMX, or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    native = any(
        bool(getattr(cpu, name, lambda: False)())
        for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )
    return native and _probe(BF16)


def default_plan(device: str | torch.device = "cpu") -> FastPlan:
    """The plan for this machine, as chosen by the benchmark's measurements (docs/performance.md)."""
    if torch.device(device).type != "cpu":
        return FastPlan(image=KEEP, text=KEEP, encoder=KEEP, head=KEEP)
    int8 = _probe(INT8)
    head = INT8 if int8 else BF16 if _probe(BF16) else KEEP
    if has_fast_bf16():
        return FastPlan(image=BF16, text=BF16, encoder=INT8 if int8 else BF16, head=head)
    # No bfloat16 units: int8 for the image side only; int8 decoder layers cost too much agreement.
    return FastPlan(image=INT8 if int8 else FP32, text=FP32, encoder=INT8 if int8 else FP32, head=head)


def usable(plan: FastPlan) -> FastPlan:
    """``plan`` with every format this machine cannot run replaced by ``keep``."""
    return replace(
        plan,
        image=plan.image if _probe(plan.image) else KEEP,
        text=plan.text if _probe(plan.text) else KEEP,
        encoder=plan.encoder if _probe(plan.encoder) else KEEP,
        head=plan.head if _probe(plan.head) else KEEP,
    )


# --- fast Linear layers -----------------------------------------------------------------------------
class PackedLinear(nn.Module):
    """``x @ W.T + b`` with ``W`` packed once for oneDNN, computed in ``compute_dtype``.

    The result is returned in ``out_dtype`` (None: in the compute dtype), so that a chain of bfloat16
    layers does not round-trip through float32 while layers feeding the residual stream return float32.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, compute_dtype: torch.dtype,
                 out_dtype: torch.dtype | None, gelu: bool = False) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.compute_dtype, self.out_dtype = compute_dtype, out_dtype
        # exact (erf) GELU applied by oneDNN on the float32 accumulator, before rounding
        self._post_op, self._algorithm = ("gelu", "none") if gelu else ("none", "")
        packed = weight.detach().to(compute_dtype).contiguous()
        self._packed = torch.ops.mkldnn._reorder_linear_weight(packed, None)
        self._bias = None if bias is None else bias.detach().to(compute_dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.to(self.compute_dtype), self._packed, self._bias,
                                               self._post_op, [], self._algorithm)
        return y if self.out_dtype is None else y.to(self.out_dtype)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, compute={self.compute_dtype}, "
                f"out={self.out_dtype}, post_op={self._post_op}")


class Int8Linear(nn.Module):
    """Dynamic int8 quantization: int8 per-channel weights, activations quantized per call (fbgemm/onednn).

    Built on ``torch.ao.nn.quantized.dynamic.Linear``: deprecated in favour of torchao but still shipped and
    fast in torch 2.13; :func:`default_plan` only picks it after probing that it works.
    """

    _BLOCK = 2048

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 out_dtype: torch.dtype | None) -> None:
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        self.out_features, self.in_features = weight.shape
        self.out_dtype = out_dtype
        w = weight.detach()
        scales = (torch.maximum(w.amax(dim=1), -w.amin(dim=1)).double() / 127.0).clamp(min=1e-12)
        zeros = torch.zeros(w.shape[0], dtype=torch.long)
        # A block of rows at a time: a float32 copy of a whole 30k-row LM head would be a 94 MB peak.
        values = torch.empty(w.shape, dtype=torch.int8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for start in range(0, w.shape[0], self._BLOCK):
                rows = slice(start, start + self._BLOCK)
                values[rows] = torch.quantize_per_channel(
                    w[rows].float(), scales[rows], zeros[rows], 0, torch.qint8
                ).int_repr()
            qweight = torch._make_per_channel_quantized_tensor(values, scales, zeros, 0)
            self.inner = DynamicLinear(self.in_features, self.out_features, dtype=torch.qint8)
            self.inner.set_weight_bias(qweight, None if bias is None else bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x.float())
        return y if self.out_dtype is None else y.to(self.out_dtype)


class RescoredLinear(nn.Module):
    """The LM head: every logit from a cheap low-precision scan (bf16 or int8), then the ``top_k`` largest
    of each row recomputed exactly in float32 from the float32 weight (the tied word embedding, so no
    extra copy).

    Decoding only ever picks among the top few logits, where the scan's rounding would otherwise reorder
    near-ties; the rest only enter the softmax's normaliser, where such rounding averages out.
    """

    top_k = 16

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scan: str) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.scan = make_linear(weight, bias, scan, torch.float32)
        self._weight = weight.detach()
        self._bias = None if bias is None else bias.detach().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.scan(x)
        k = min(self.top_k, logits.shape[-1])
        index = logits.topk(k, dim=-1).indices
        exact = (self._weight[index] * x.float().unsqueeze(-2)).sum(-1)
        if self._bias is not None:
            exact = exact + self._bias[index]
        return logits.scatter_(-1, index, exact)


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None, fmt: str,
                out_dtype: torch.dtype | None, gelu: bool = False) -> nn.Module:
    """A fast replacement for ``nn.Linear(weight, bias)`` in format ``fmt`` (``gelu``: followed by an
    exact GELU, fused in; only for bf16/fp32)."""
    if fmt.startswith(RESCORED):
        return RescoredLinear(weight, bias, fmt.removeprefix(RESCORED))
    if fmt in (BF16, FP32):
        return PackedLinear(weight, bias, torch.bfloat16 if fmt == BF16 else torch.float32, out_dtype, gelu)
    if gelu:
        raise ValueError(f"format {fmt!r} cannot fuse a GELU")
    if fmt == INT8:
        return Int8Linear(weight, bias, out_dtype)
    raise ValueError(f"no fast Linear for format {fmt!r}")


# --- attention ----------------------------------------------------------------------------------------
def _sdpa_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """transformers' additive mask in the attention's dtype; float32's minimum would round to -inf in
    bfloat16, and a row of -inf is NaN after the softmax."""
    if mask is None or mask.dtype == torch.bool or mask.dtype == dtype:
        return mask
    return mask.float().clamp(min=torch.finfo(dtype).min).to(dtype)


class FastBlipAttention(BlipAttention):
    """The vision encoder's attention through fused ``scaled_dot_product_attention``."""

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, None]:
        b, t, c = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.projection(context.transpose(1, 2).reshape(b, t, c)), None


@dataclass
class _ImageKV:
    """Keys/values of one encoder-states tensor, computed on its distinct rows only; they live as long as
    that tensor does (a weak reference), so a finished batch's keys/values are freed with its images."""

    source: weakref.ref
    keys: torch.Tensor  # (distinct rows, heads, tokens, head_dim)
    values: torch.Tensor
    repeat: int  # the source's rows are the distinct rows, each repeated `repeat` times in a row


_last_repeat: list[tuple[weakref.ref, int]] = []  # every layer asks about the same tensor in turn


def _row_repeat(states: torch.Tensor) -> int:
    """r when ``states`` is r consecutive copies of each of its distinct rows (beams, ITM pairs), else 1."""
    if _last_repeat and _last_repeat[0][0]() is states:
        return _last_repeat[0][1]
    n = states.shape[0]
    r = 1
    while r < n and torch.equal(states[r], states[0]):
        r += 1
    if r > 1 and (n % r or not all(torch.equal(states[i], states[i - i % r]) for i in range(r, n))):
        r = 1
    _last_repeat[:] = [(weakref.ref(states), r)]
    return r


def _mask_is_empty(mask: torch.Tensor | None) -> bool:
    if mask is None:
        return True
    return bool(mask.all()) if mask.dtype == torch.bool else not bool(mask.any())


class FastBlipTextSelfAttention(BlipTextSelfAttention):
    """BLIP's text attention through fused attention; as cross-attention, it computes the keys/values of
    each distinct image once and keeps them across decoding steps, beams and calls (see module doc)."""

    cross_mode: str = ABSORBED
    image_dtype: torch.dtype = torch.float32  # of the absorbed attention's matmuls with the image tokens

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, self.attention_head_size).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        cache = cache if cache is not None else past_key_values
        b, length, _ = hidden_states.shape
        query = self._split(self.query(hidden_states))
        if encoder_hidden_states is not None and self.cross_mode == ABSORBED:
            context = self._cross_absorbed(query, encoder_hidden_states, encoder_attention_mask)
        elif encoder_hidden_states is not None and self.cross_mode == SHARED:
            context = self._cross(query, encoder_hidden_states, encoder_attention_mask)
        else:
            mask = attention_mask if encoder_hidden_states is None else encoder_attention_mask
            context = self._attend(query, hidden_states, encoder_hidden_states, mask, cache)
        return context.transpose(1, 2).reshape(b, length, self.all_head_size), None

    def _attend(self, query: torch.Tensor, hidden_states: torch.Tensor, encoder_states: torch.Tensor | None,
                mask: torch.Tensor | None, cache: Any) -> torch.Tensor:
        """transformers' own caching (self-attention, or cross-attention without sharing)."""
        is_cross = encoder_states is not None
        layer_cache = None
        if cache is not None:
            if isinstance(cache, EncoderDecoderCache):
                layer_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
            else:
                layer_cache = cache
        if is_cross and layer_cache is not None and cache.is_updated.get(self.layer_idx):
            key, value = layer_cache.layers[self.layer_idx].keys, layer_cache.layers[self.layer_idx].values
        else:
            source = encoder_states if is_cross else hidden_states
            key, value = self._split(self.key(source)), self._split(self.value(source))
            if layer_cache is not None:
                key, value = layer_cache.update(key, value, self.layer_idx)
                if is_cross and isinstance(cache, EncoderDecoderCache):
                    cache.is_updated[self.layer_idx] = True
        dtype = key.dtype
        return F.scaled_dot_product_attention(query.to(dtype), key, value.to(dtype),
                                              attn_mask=_sdpa_mask(mask, dtype)).to(query.dtype)

    def _image_kv(self, states: torch.Tensor) -> _ImageKV:
        memo: _ImageKV | None = self.__dict__.get("_kv_memo")
        if memo is not None and memo.source() is states:
            return memo
        repeat = _row_repeat(states)
        unique = states[::repeat] if repeat > 1 else states
        keys, values = self._split(self.key(unique)), self._split(self.value(unique))
        owner = weakref.ref(self)

        def forget(ref: weakref.ref) -> None:
            module = owner()
            if module is not None and getattr(module.__dict__.get("_kv_memo"), "source", None) is ref:
                del module.__dict__["_kv_memo"]

        memo = _ImageKV(weakref.ref(states, forget), keys, values, repeat)
        self.__dict__["_kv_memo"] = memo
        return memo

    def _cross(self, query: torch.Tensor, states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        kv = self._image_kv(states)
        keys, values, r = kv.keys, kv.values, kv.repeat
        dtype = keys.dtype
        if not _mask_is_empty(mask):
            # Padded encoder states (never blipkit's images): give every row its own copy.
            if r > 1:
                keys, values = keys.repeat_interleave(r, 0), values.repeat_interleave(r, 0)
            return F.scaled_dot_product_attention(query.to(dtype), keys, values,
                                                  attn_mask=_sdpa_mask(mask, dtype)).to(query.dtype)
        b, heads, length, dim = query.shape
        if r == 1:
            return F.scaled_dot_product_attention(query.to(dtype), keys, values).to(query.dtype)
        # The r rows sharing an image attend to it together: their queries become one longer query.
        q = query.reshape(b // r, r, heads, length, dim).transpose(1, 2)
        q = q.reshape(b // r, heads, r * length, dim)
        out = F.scaled_dot_product_attention(q.to(dtype), keys, values)
        out = out.reshape(b // r, heads, r, length, dim).transpose(1, 2).reshape(b, heads, length, dim)
        return out.to(query.dtype)


    def _cross_absorbed(self, query: torch.Tensor, states: torch.Tensor, mask: torch.Tensor | None
                        ) -> torch.Tensor:
        """Attention over the image tokens themselves.

        Per head h, ``q·(W_k x_j + b_k) = (W_kᵀ q)·x_j + const`` and ``Σ_j p_j (W_v x_j + b_v) =
        W_v (Σ_j p_j x_j) + b_v``: so no keys or values are ever projected. A decoding step reads the
        image tokens (the same for every layer, so they stay in cache) instead of each layer's keys and
        values (which do not: 85 MB per step for 4 images at BLIP-base), and nothing per image is kept.
        The rows sharing an image (beams, ITM pairs) read it once, their queries stacked. The two
        matmuls with the image tokens run in ``image_dtype``; the head projections in the dtype the key/value
        weights are kept in (bfloat16 on the bfloat16 plan: see :func:`stored_dtypes`).
        """
        b, heads, length, dim = query.shape
        width = states.shape[-1]
        r = _row_repeat(states) if _mask_is_empty(mask) else 1
        x = _distinct_rows(states, r, self.image_dtype)  # (b // r, tokens, width)
        wk = self.key.weight.view(heads, dim, width)
        wv = self.value.weight.view(heads, dim, width)
        head_dtype = wk.dtype if wk.dtype == torch.bfloat16 else torch.float32
        # (heads, b * length, dim) @ (heads, dim, width): W_kᵀ q for every head at once
        q = query.to(head_dtype).permute(1, 0, 2, 3).reshape(heads, b * length, dim)
        a = torch.bmm(q, wk.to(head_dtype)).view(heads, b // r, r, length, width)
        a = a.permute(1, 0, 2, 3, 4).reshape(b // r, heads * r * length, width)
        scores = torch.bmm(a.to(x.dtype), x.transpose(1, 2)).float() * (dim ** -0.5)
        if r == 1 and not _mask_is_empty(mask):
            scores = (scores.view(b, heads, length, -1) + mask.float()).view(b, heads * length, -1)
        c = torch.bmm(torch.softmax(scores, dim=-1).to(x.dtype), x).to(head_dtype)  # (b//r, heads*r*len, w)
        c = c.view(b // r, heads, r, length, width).permute(1, 0, 2, 3, 4).reshape(heads, b * length, width)
        out = torch.bmm(c, wv.to(head_dtype).transpose(1, 2)).float()  # (heads, b * length, dim)
        if self.value.bias is not None:
            out = out + self.value.bias.float().view(heads, 1, dim)
        return out.view(heads, b, length, dim).transpose(0, 1).to(query.dtype)


_last_rows: list[tuple[weakref.ref, int, torch.Tensor]] = []


def _distinct_rows(states: torch.Tensor, repeat: int, dtype: torch.dtype) -> torch.Tensor:
    """``states[::repeat]`` in ``dtype``, contiguous, made once per tensor for all the layers reading it."""
    if repeat == 1 and states.dtype == dtype and states.is_contiguous():
        return states
    last = _last_rows[0] if _last_rows else None
    if last is not None and last[0]() is states and last[1] == repeat and last[2].dtype == dtype:
        return last[2]
    rows = states[::repeat].to(dtype).contiguous()
    _last_rows[:] = [(weakref.ref(states), repeat, rows)]
    return rows


def clear_image_kv(model: nn.Module) -> None:
    """Drop the image keys/values kept by the fast cross-attention (frees their memory)."""
    for module in model.modules():
        module.__dict__.pop("_kv_memo", None)


# --- applying a plan ------------------------------------------------------------------------------------
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


# --- loading without a float32 copy -------------------------------------------------------------------
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 * 1024 * 1024


def safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / n for n in names]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"{path} has no .safetensors weights; blipkit loads safetensors only")
    return files


def read_safetensors(file: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time with plain reads.

    Memory-mapping the file (what ``safe_open`` does) would count every page read in the process's
    resident memory until it is closed; reading into fresh buffers keeps only the tensors kept.
    """
    size = file.stat().st_size
    with file.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len <= min(_MAX_HEADER, size - 8):
            raise ModelNotFoundError(f"{file} is not a safetensors file")
        header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        base = 8 + header_len
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            start, end = info["data_offsets"]
            if dtype is None or not 0 <= start <= end <= size - base:
                raise ModelNotFoundError(f"{file}: tensor {name} has an unsupported dtype or bad offsets")
            buffer = bytearray(end - start)
            f.seek(base + start)
            f.readinto(buffer)
            tensor = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
            yield name, tensor.reshape(info["shape"])


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    if attr in module._parameters:
        param = value if isinstance(value, nn.Parameter) else nn.Parameter(value, requires_grad=False)
        module._parameters[attr] = param
    else:
        module._buffers[attr] = value


def _find_parameter(model: nn.Module, name: str) -> torch.Tensor | None:
    try:
        return model.get_parameter(name)
    except AttributeError:  # inside a Linear that was replaced
        return None


class _Builder:
    """Collects each replaced Linear's weight and bias, and builds it as soon as both are there."""

    def __init__(self, model: nn.Module, formats: dict[str, tuple[str, torch.dtype | None, bool]]) -> None:
        self.model, self.formats = model, formats
        self.gelu_fed = _gelu_fed(model)
        self.parents = _parents(model)
        self.modules = dict(model.named_modules())
        self.pending: dict[str, dict[str, torch.Tensor]] = {}

    def wants(self, name: str) -> bool:
        module_name, _, attr = name.rpartition(".")
        return module_name in self.formats and attr in ("weight", "bias")

    def add(self, name: str, value: torch.Tensor) -> None:
        module_name, _, attr = name.rpartition(".")
        old = self.modules[module_name]
        parts = self.pending.setdefault(module_name, {})
        parts[attr] = value
        if "weight" in parts and ("bias" in parts or old.bias is None):
            fmt, out, gelu = self.formats[module_name]
            new = make_linear(parts["weight"], parts.get("bias"), fmt, out, gelu)
            _install(self.parents, old, new, self.gelu_fed.get(module_name) if gelu else None)
            del self.pending[module_name]


def _restore_buffer(name: str, buffer: torch.Tensor) -> torch.Tensor:
    if name.endswith("position_ids"):
        return torch.arange(buffer.shape[-1]).expand(buffer.shape).clone()
    raise ModelNotFoundError(f"the fast loader does not know how to rebuild buffer {name}")


def load_fast(cls: type[PreTrainedModel], path: Path, plan: FastPlan | None = None,
              device: str | torch.device = "cpu") -> tuple[PreTrainedModel, FastPlan]:
    """Load ``cls`` from ``path`` straight into its fast form; return the model and the plan it used."""
    plan = usable(plan or default_plan(device))
    if torch.device(device).type != "cpu":
        model = cls.from_pretrained(path, use_safetensors=True).to(device)
        return apply_fast(model, plan), plan
    config = cls.config_class.from_pretrained(path)
    with torch.device("meta"):
        model = cls(config)
    model.eval()
    swap_attention(model, plan)
    builder = _Builder(model, linear_formats(model, plan))
    stored = stored_dtypes(model, plan)
    widen_embeddings(model, stored)
    loaded: set[str] = set()
    names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    names |= {n for n, _ in model.named_buffers(remove_duplicate=False)}
    with _returning_freed_buffers():
        for file in safetensors_files(path):
            for name, tensor in read_safetensors(file):
                if name not in names:
                    continue
                value = tensor.to(stored.get(name, torch.float32)) if tensor.is_floating_point() else tensor
                del tensor
                if builder.wants(name):
                    builder.add(name, value)
                else:
                    _set_tensor(model, name, value)
                loaded.add(name)
        # Tied weights (the LM head is the word embedding) are stored once; point the copies at it.
        # Targets inside modules the built-in model shares are already there (or already replaced).
        for target, source in getattr(model, "all_tied_weights_keys", {}).items():
            value = _find_parameter(model, source)
            if target in loaded or value is None or value.is_meta:
                continue
            if builder.wants(target):
                builder.add(target, value.data)
            else:
                current = _find_parameter(model, target)
                if current is None or not current.is_meta:
                    continue
                _set_tensor(model, target, value)
            loaded.add(target)
    for name, buffer in model.named_buffers():
        if buffer.is_meta:  # non-persistent buffers are not in the file
            _set_tensor(model, name, _restore_buffer(name, buffer))
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if builder.pending or missing:
        raise ModelNotFoundError(
            f"{path} lacks weights the model needs: {sorted(set(missing) | set(builder.pending))[:5]}"
        )
    fold_batchnorm(model, plan)
    return model.requires_grad_(False), plan


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_LOAD_MMAP_THRESHOLD = 1 << 20  # while loading: every read buffer over 1 MB is its own mapping
_RUN_MMAP_THRESHOLD = 32 << 20  # afterwards: the ceiling glibc's own dynamic threshold climbs to
MMAP_THRESHOLD_ENV = "BLIPKIT_MMAP_THRESHOLD"


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def _returning_freed_buffers() -> Iterator[None]:
    """Make the load's read buffers go back to the system as soon as each tensor is converted.

    glibc serves large allocations from its heap once its dynamic mmap threshold has grown, and keeps what
    is freed there: the buffers of a whole load then pile up as free-but-resident heap (about 120 MB at
    BLIP-base). A low threshold during the load maps each buffer on its own and unmaps it when freed.
    Afterwards the threshold is pinned where glibc's dynamic mode ends up (32 MB, trimming above 64 MB),
    since mapping every activation afresh costs 15-35% of inference speed. ``BLIPKIT_MMAP_THRESHOLD=<bytes>``
    pins a lower one instead: a few percent less peak memory, for that speed.
    """
    libc = _libc()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _LOAD_MMAP_THRESHOLD)
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, ValueError):
            if libc is not None:
                threshold = int(os.environ.get(MMAP_THRESHOLD_ENV, "0")) or _RUN_MMAP_THRESHOLD
                libc.mallopt(_M_MMAP_THRESHOLD, threshold)
                libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
                libc.malloc_trim(0)


def flop_formulas() -> dict[Any, Any]:
    """FLOP formulas for the fast path's kernels, for ``torch.utils.flop_counter.FlopCounterMode``."""

    def linear_flops(x_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * math.prod(x_shape) * int(out_shape[-1])

    def cpu_attention_flops(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        b, h, length, d = q
        return 4 * b * h * length * int(k[-2]) * d

    # keyed by op packet, as FlopCounterMode looks them up
    formulas: dict[Any, Any] = {
        torch.ops.mkldnn._linear_pointwise: linear_flops,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops,
    }
    with contextlib.suppress(AttributeError, RuntimeError):
        formulas[torch.ops.quantized.linear_dynamic] = linear_flops
    return formulas

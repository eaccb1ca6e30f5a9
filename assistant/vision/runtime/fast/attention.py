"""BLIP's attention through fused ``scaled_dot_product_attention``, and the text side's cross-attention to
image tokens computed once per distinct image (or absorbed into the query and output projections)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers.cache_utils import EncoderDecoderCache
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from assistant.vision.runtime.fast.plan import ABSORBED, SHARED


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
            # Padded encoder states (never the engine's images): give every row its own copy.
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

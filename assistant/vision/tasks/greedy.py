"""The engine's own greedy decoding loop, for the decoding every key press runs: one picture, no prompt,
greedy, on the fast path.

transformers' ``generate`` is general: at every step it builds masks and cache objects, goes through
wrappers around every layer and inspects each logits processor's signature. Here a step calls the same
layers and the same fast kernels (:mod:`assistant.vision.runtime.fast`) in the same order, with the
self-attention's keys and values kept in plain tensors; the tokens and raw logits are generate's
(tests/test_greedy.py compares them; so did 30 Flickr8k test photos with the built-in model). A brief
built-in caption took 166 ms instead of 198, BLIP-base's twenty random-weight tokens 841 ms instead of
955. Anything else (beams, sampling, prompts, batches, the float32 path) goes through ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LogitsProcessorList
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

from assistant.vision.runtime.checkpoint import Checkpoint
from assistant.vision.runtime.fast import ABSORBED, FastBlipTextSelfAttention


@dataclass
class Decoded:
    """What ``generate(..., return_dict_in_generate=True, output_logits=True)`` gives: the sequences and
    each step's raw logits (before any processor)."""

    sequences: torch.Tensor
    logits: tuple[torch.Tensor, ...]


def applies(ckpt: Checkpoint, input_ids: torch.Tensor, num_beams: int, do_sample: bool,
            repetition_penalty: float) -> bool:
    """Whether :func:`decode` serves this decoding."""
    if input_ids.shape != (1, 1) or num_beams != 1 or do_sample or repetition_penalty != 1.0:
        return False
    if not ckpt.extras.get("fast") or ckpt.device.type != "cpu":
        return False
    layers = ckpt.model.text_decoder.bert.encoder.layer
    return all(isinstance(layer.attention.self, FastBlipTextSelfAttention)
               and isinstance(layer.crossattention.self, FastBlipTextSelfAttention)
               and layer.crossattention.self.cross_mode == ABSORBED
               and layer.chunk_size_feed_forward == 0 for layer in layers)


@torch.inference_mode()
def decode(ckpt: Checkpoint, input_ids: torch.Tensor, states: torch.Tensor, max_new_tokens: int,
           no_repeat_ngram_size: int, processors: LogitsProcessorList, eos: int) -> Decoded:
    """Greedy decoding of one row (see :func:`applies`), ending at ``eos`` or after ``max_new_tokens``."""
    decoder = ckpt.model.text_decoder
    embeddings, layers = decoder.bert.embeddings, decoder.bert.encoder.layer
    steps = LogitsProcessorList(processors)
    if no_repeat_ngram_size > 0:
        steps.append(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size))
    keys: list[torch.Tensor | None] = [None] * len(layers)
    values: list[torch.Tensor | None] = [None] * len(layers)
    sequence, raw = input_ids, []
    token = input_ids
    for step in range(max_new_tokens):
        position = sequence.shape[1] - 1
        h = embeddings.word_embeddings(token) + embeddings.position_embeddings.weight[position]
        h = embeddings.LayerNorm(h)
        for i, layer in enumerate(layers):
            h = _self_attention(layer.attention, h, keys, values, i)
            h = _cross_attention(layer.crossattention, h, states)
            inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(h))
            h = layer.output.LayerNorm(layer.output.dense(inner) + h)
        logits = decoder.cls(h)[:, -1, :].to(dtype=torch.float32, copy=True)
        raw.append(logits)
        scores = steps(sequence, logits.clone())
        token = scores.argmax(dim=-1, keepdim=True)
        sequence = torch.cat([sequence, token], dim=1)
        if int(token) == eos or step + 1 == max_new_tokens:
            break
    return Decoded(sequence, tuple(raw))


def _self_attention(attention: torch.nn.Module, h: torch.Tensor, keys: list, values: list, i: int
                    ) -> torch.Tensor:
    own = attention.self
    query, key, value = own._split(own.query(h)), own._split(own.key(h)), own._split(own.value(h))
    if keys[i] is not None:
        key, value = torch.cat([keys[i], key], dim=2), torch.cat([values[i], value], dim=2)
    keys[i], values[i] = key, value
    dtype = key.dtype
    context = F.scaled_dot_product_attention(query.to(dtype), key, value.to(dtype)).to(query.dtype)
    context = context.transpose(1, 2).reshape(h.shape[0], h.shape[1], own.all_head_size)
    return attention.output.LayerNorm(attention.output.dense(context) + h)


def _cross_attention(attention: torch.nn.Module, h: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    own = attention.self
    context = own._cross_absorbed(own._split(own.query(h)), states, None)
    context = context.transpose(1, 2).reshape(h.shape[0], h.shape[1], own.all_head_size)
    return attention.output.LayerNorm(attention.output.dense(context) + h)

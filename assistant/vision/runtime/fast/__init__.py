"""The engine's CPU fast path: BLIP's own computation with cheaper kernels and less memory.

``vision.load(..., fast=True)`` (``--fast`` on the commands) loads a checkpoint through :func:`load_fast`
with the :func:`default_plan` for this machine. The levers, each measured by ``benchmarks/run.py``
(docs/performance.md):

- **bfloat16 matmuls** on CPUs with AMX, where oneDNN runs them several times faster than float32: the
  vision encoder, and the text layers (decoding reads every weight at every step, so half the bytes is
  nearly half the time). Weights are packed once for oneDNN at load time; the residual stream, LayerNorms
  and softmaxes stay float32; an exact GELU is fused into the matmul that feeds it.
- **The LM head as a scan plus exact re-scoring.** All 30k logits come from an int8 (or bf16) matmul, then
  the top 16 of each row are recomputed in float32 from the tied word embedding, so greedy and beam
  choices are float32's.
- **Fused attention** (``scaled_dot_product_attention``) instead of BLIP's matmul-softmax-matmul.
- **Absorbed cross-attention.** transformers projects keys and values for the 577 image tokens of every
  *beam*, keeps them for all 12 layers and copies them at each beam-search step (and the engine's confidence
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

The vision and decoder layers are int8 (dynamic quantization) on CPUs without AMX, where float32 decoding
is memory-bound and where, with AVX512-BF16 alone (AMD Zen 4), int8 measured faster than bfloat16; with
AMX they stay bfloat16, whose greedy tokens agree with float32's more often. ``assistant.vision.load``'s
default runs this path where it was measured to pay at the same caption quality
(:func:`assistant.vision.runtime.checkpoint.use_fast`): on CPUs with bfloat16 units, and on CPUs without
them wherever torch's int8 kernels run. The benchmark reports how often greedy captions
agree with float32 token for token.
"""

from __future__ import annotations

from assistant.vision.runtime.fast.attention import FastBlipAttention, FastBlipTextSelfAttention
from assistant.vision.runtime.fast.convert import (
    WideEmbedding,
    apply_fast,
    fold_batchnorm,
    linear_formats,
    stored_dtypes,
    swap_attention,
)
from assistant.vision.runtime.fast.linear import (
    BF16,
    FORMATS,
    FP32,
    INT8,
    KEEP,
    Int8Linear,
    PackedLinear,
    RescoredLinear,
    flop_formulas,
    make_linear,
)
from assistant.vision.runtime.fast.loading import (
    MMAP_THRESHOLD_ENV,
    load_fast,
    read_safetensors,
    safetensors_files,
)
from assistant.vision.runtime.fast.plan import (
    ABSORBED,
    CACHED,
    CROSS_MODES,
    SHARED,
    FastPlan,
    default_plan,
    fast_by_default,
    has_fast_bf16,
    usable,
)

__all__ = [
    "ABSORBED", "BF16", "CACHED", "CROSS_MODES", "FORMATS", "FP32", "INT8", "KEEP", "MMAP_THRESHOLD_ENV",
    "SHARED", "FastBlipAttention", "FastBlipTextSelfAttention", "FastPlan", "Int8Linear", "PackedLinear",
    "RescoredLinear", "WideEmbedding", "apply_fast", "default_plan", "fast_by_default", "flop_formulas",
    "fold_batchnorm", "has_fast_bf16", "linear_formats", "load_fast", "make_linear", "read_safetensors",
    "safetensors_files", "stored_dtypes", "swap_attention", "usable",
]

"""What the fast path changes (:class:`FastPlan`), and which plan this machine can run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from assistant.vision.runtime.fast.linear import BF16, FORMATS, FP32, INT8, KEEP, make_linear

# How text attends to image tokens (see FastPlan).
ABSORBED, SHARED, CACHED = "absorbed", "shared", "cached"
CROSS_MODES = (ABSORBED, SHARED, CACHED)


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


def _cpu_has(*features: str) -> bool:
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, f"_is_{name}_supported", lambda: False)()) for name in features)


def has_fast_bf16() -> bool:
    """True on CPUs whose matrix units run bfloat16 natively (AMX, or AVX512-BF16)."""
    return _cpu_has("amx_tile", "avx512_bf16") and _probe(BF16)


def has_amx() -> bool:
    """True on CPUs with AMX tiles (Xeon since Sapphire Rapids), where the bfloat16 plan was measured."""
    return _cpu_has("amx_tile")


def fast_by_default() -> bool:
    """Whether the fast path is the default on this CPU: with bfloat16 units, or with int8 kernels. Without
    AMX its plan is int8, which (on an AVX2 CPU) made BLIP-base captions 2.2x (greedy) to 2.6x (beam) faster
    than float32 transformers in 56% less memory, and the built-in model's descriptions 20% faster in the
    running app in less memory, with the same caption quality and calibration (tests/benchmarks/README.md)."""
    return has_fast_bf16() or _probe(INT8)


def default_plan(device: str | torch.device = "cpu") -> FastPlan:
    """The plan for this machine, as chosen by the benchmark's measurements (docs/performance.md)."""
    if torch.device(device).type != "cpu":
        return FastPlan(image=KEEP, text=KEEP, encoder=KEEP, head=KEEP)
    int8 = _probe(INT8)
    head = INT8 if int8 else BF16 if _probe(BF16) else KEEP
    if has_fast_bf16() and (has_amx() or not int8):
        return FastPlan(image=BF16, text=BF16, encoder=INT8 if int8 else BF16, head=head)
    # AVX512-BF16 without AMX (AMD Zen 4, Intel Cooper Lake): its bfloat16 dot products run at twice
    # float32's rate, VNNI's int8 ones at four times, and int8 weights are half the bytes. Measured on an
    # AMD EPYC with both (tests/benchmarks/README.md, 2026-12-07): int8 everywhere made BLIP-base greedy
    # captions 1.22x and the built-in model's 1.39x faster than the bfloat16 plan, beams the same.
    # No bfloat16 units: int8 wherever it probes correct. A decoding step reads every text weight for one
    # row of activations, so float32 decoding is memory-bound (BLIP-base on an AVX2 EPYC: 40 of its 62 ms
    # a token), and int8 weights are a quarter of the bytes. Quality was judged on trained weights, the
    # built-in model's (300 Flickr8k test photos: greedy CIDEr 49.45 -> 49.37, beam 53.3 -> 55.6), not on
    # the random-weight agreement (87% of next tokens against 95% with float32 decoding), which near-ties
    # everywhere make pessimistic. tests/benchmarks/README.md has both.
    fmt = INT8 if int8 else FP32
    return FastPlan(image=fmt, text=fmt, encoder=fmt, head=head)


def usable(plan: FastPlan) -> FastPlan:
    """``plan`` with every format this machine cannot run replaced by ``keep``."""
    return replace(
        plan,
        image=plan.image if _probe(plan.image) else KEEP,
        text=plan.text if _probe(plan.text) else KEEP,
        encoder=plan.encoder if _probe(plan.encoder) else KEEP,
        head=plan.head if _probe(plan.head) else KEEP,
    )

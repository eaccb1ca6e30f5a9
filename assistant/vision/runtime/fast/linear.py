"""The fast path's Linear layers: weights packed once for oneDNN (bfloat16 or float32), dynamic int8, and
the LM head as a low-precision scan whose top logits are recomputed exactly."""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

import torch
from torch import nn

# Weight formats for a group of Linear layers.
BF16, INT8, FP32, KEEP = "bf16", "int8", "fp32", "keep"
FORMATS = (BF16, INT8, FP32, KEEP)
RESCORED = "rescored-"  # the LM head in bf16 or int8 is a scan whose top logits are recomputed exactly


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
            # Built 1x1 and then given its weights: built at full size it would pack an empty weight
            # first, as costly as packing the real one (a tenth of the built-in model's load).
            self.inner = DynamicLinear(1, 1, dtype=torch.qint8)
            self.inner.in_features, self.inner.out_features = self.in_features, self.out_features
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

"""EfficientNet-Lite (Tan & Le 2019, the "Lite" variant for mobile CPUs), as the built-in model's image trunk.

Lite drops squeeze-and-excitation and uses ReLU6, which keeps it fast and quantisation-friendly on CPUs.
Parameter names follow the `efficientnet-lite-pytorch` package so that its ImageNet weights load as they
are (see ``assistant.training.init_weights``). Padding is TensorFlow's "same", computed per call, so any
input size works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) of the seven stages, from the
# reference builder (efficientnet_lite_builder.py).
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

# variant -> (width multiplier, depth multiplier, native resolution)
VARIANTS: dict[str, tuple[float, float, int]] = {
    "lite0": (1.0, 1.0, 224),
    "lite1": (1.0, 1.1, 240),
    "lite2": (1.1, 1.2, 260),
    "lite3": (1.2, 1.4, 280),
    "lite4": (1.4, 1.8, 300),
}
HEAD_CHANNELS = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def _round_filters(filters: int, width: float) -> int:
    divisor = 8
    scaled = filters * width
    return max(divisor, int(scaled + divisor / 2) // divisor * divisor)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (asymmetric when the stride is 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:  # symmetric: the convolution pads, with no copy of x
            return F.conv2d(x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation,
                            self.groups)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


@dataclass(frozen=True)
class _BlockSpec:
    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (no squeeze-excitation in Lite)."""

    def __init__(self, spec: _BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        hidden = spec.c_in * spec.expand
        if spec.expand != 1:
            self._expand_conv = SameConv2d(spec.c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, spec.kernel, stride=spec.stride, groups=hidden, bias=False
        )
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = SameConv2d(hidden, spec.c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(spec.c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.spec.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.spec.stride == 1 and self.spec.c_in == self.spec.c_out:
            h = h + x
        return h


class EfficientNetLite(nn.Module):
    """The convolutional trunk up to the 1280-channel head; returns the final feature grid (B, 1280, h, w)."""

    def __init__(self, variant: str = "lite0") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(VARIANTS)}")
        width, depth, _ = VARIANTS[variant]
        self.variant = variant
        # Lite keeps the stem and head fixed and scales neither the first nor the last stage's depth.
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        blocks: list[MBConvBlock] = []
        last = len(_STAGES) - 1
        for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_STAGES):
            c_in = 32 if i == 0 else _round_filters(c_in, width)
            c_out = _round_filters(c_out, width)
            n = repeats if i in (0, last) else math.ceil(depth * repeats)
            for j in range(n):
                blocks.append(
                    MBConvBlock(
                        _BlockSpec(kernel, stride if j == 0 else 1, expand, c_in if j == 0 else c_out, c_out)
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(blocks[-1].spec.c_out, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=_BN_EPS, momentum=_BN_MOMENTUM)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold every BatchNorm into the convolution before it, for inference only (the fast path):
        the same function in a fifth fewer operations. The normalisations become identities, so the
        trunk can no longer be trained."""
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for block in self._blocks:
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
            if block.spec.expand != 1:
                pairs.append((block, "_expand_conv", "_bn0"))
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                continue  # already folded
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias, requires_grad=False)
            setattr(owner, bn_name, nn.Identity())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(pixel_values)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

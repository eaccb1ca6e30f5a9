"""Training data held as tensors: every image decoded once, every text tokenised once.

Flickr8k plus the VQA sets fit in a few GB as uint8, which makes an epoch a matter of indexing, on a
GPU as well as on a CPU; augmentation then runs on the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from assistant.vision.io import load_image


def _decode(path: str, size: int) -> np.ndarray:
    image = load_image(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(image, dtype=np.uint8).transpose(2, 0, 1)


def decode_images(
    paths: Sequence[str], size: int, workers: int = 4, desc: str = "decode images"
) -> torch.Tensor:
    """All images as one (N, 3, size, size) uint8 tensor, resized as BLIP's image processor does."""
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(
            tqdm(
                pool.map(lambda p: _decode(p, size), paths),
                total=len(paths),
                desc=desc,
                leave=False,
                mininterval=5,
            )
        ):
            out[i] = torch.from_numpy(arr)
    return out


@dataclass
class TokenTable:
    ids: torch.Tensor  # (N, L) int64, padded
    mask: torch.Tensor  # (N, L)

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.ids[idx], self.mask[idx]
        width = int(mask.sum(dim=1).max())  # trim the padding every row of this batch shares
        return ids[:, :width], mask[:, :width]

    def to(self, device: torch.device) -> TokenTable:
        return TokenTable(self.ids.to(device), self.mask.to(device))


def tokenize_all(tokenizer, texts: Sequence[str], max_tokens: int) -> TokenTable:
    enc = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt"
    )
    return TokenTable(enc["input_ids"], enc["attention_mask"])


def normalize(pixels_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = pixels_uint8.float() / 255.0
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def augment(
    pixels_uint8: torch.Tensor,
    out_size: int,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.1,
) -> torch.Tensor:
    """Random resized crop and a little brightness/contrast jitter, batched on the tensor's device.

    No horizontal flip: captions say "left" and "right".
    """
    b = pixels_uint8.shape[0]
    dev = pixels_uint8.device
    x = pixels_uint8.float() / 255.0
    area = torch.empty(b, device=dev).uniform_(*scale)
    log_r = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, device=dev) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, device=dev) * 2 - 1) * (1 - h)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, [b, 3, out_size, out_size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter:
        bright = 1 + (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * jitter
        contrast = 1 + (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
    return (x.clamp(0, 1) * 255).round()

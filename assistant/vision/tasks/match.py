"""Image-text matching (ITM): does this text describe this image? A probability from BLIP's ITM head."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from assistant.vision.runtime.checkpoint import ITM, Checkpoint
from assistant.vision.runtime.encoding import ground_texts


@torch.inference_mode()
def itm_scores(ckpt: Checkpoint, image_embeds: torch.Tensor, texts: Sequence[str]) -> list[float]:
    """P(match) for each (image_embeds[i], texts[i]) pair."""
    ckpt.require(ITM)
    hidden, _ = ground_texts(ckpt, image_embeds, texts)
    logits = ckpt.model.itm_head(hidden[:, 0, :])
    return torch.softmax(logits.float(), dim=-1)[:, 1].tolist()

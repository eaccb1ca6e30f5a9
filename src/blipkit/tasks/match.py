"""Image-text matching (ITM): does this text describe this image? A probability from BLIP's ITM head."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blipkit.runtime.checkpoint import ITM, Checkpoint
from blipkit.runtime.encoding import check_text, tokenize


@torch.inference_mode()
def itm_scores(ckpt: Checkpoint, image_embeds: torch.Tensor, texts: Sequence[str]) -> list[float]:
    """P(match) for each (image_embeds[i], texts[i]) pair."""
    ckpt.require(ITM)
    ids, mask = tokenize(ckpt, [check_text(t) for t in texts])
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    hidden = ckpt.model.text_encoder(
        input_ids=ids,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=image_mask,
        return_dict=True,
    ).last_hidden_state
    logits = ckpt.model.itm_head(hidden[:, 0, :])
    return torch.softmax(logits.float(), dim=-1)[:, 1].tolist()

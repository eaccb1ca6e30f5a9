"""The computations every BLIP head builds on, written once for inference (``assistant.vision.tasks``) and
training
(``assistant.training.objectives``). They take any model with BLIP's module names (``text_encoder``,
``vision_proj``, ``text_proj``): transformers' BLIP classes and the built-in model alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def image_feature(model: nn.Module, image_embeds: torch.Tensor) -> torch.Tensor:
    """ITC image vectors: the [CLS] image token, projected and L2-normalised (in float32, whatever the
    model's dtype, so that similarities of half-precision models keep their resolution)."""
    return F.normalize(model.vision_proj(image_embeds[:, 0, :]).float(), dim=-1)


def text_feature(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ITC text vectors: the unimodal text encoder's [CLS] state, projected and L2-normalised (float32)."""
    hidden = model.text_encoder(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
    return F.normalize(model.text_proj(hidden[:, 0, :]).float(), dim=-1)


def grounded_states(
    model: nn.Module, image_embeds: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The image-grounded text encoder: each text's token states, cross-attending to its own image
    (``image_embeds[i]`` for row ``i``). ITM reads the first state; VQA's answer decoder reads them all."""
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    return model.text_encoder(
        input_ids=ids,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=image_mask,
        return_dict=True,
    ).last_hidden_state

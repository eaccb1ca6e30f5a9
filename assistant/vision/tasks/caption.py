"""Captioning: BLIP's image-grounded text decoder, plain or continuing a prompt."""

from __future__ import annotations

import torch

from assistant.vision.errors import TextError
from assistant.vision.runtime.checkpoint import CAPTION, Checkpoint
from assistant.vision.runtime.encoding import check_text
from assistant.vision.tasks.generation import GenerationSettings, generate_scored


def prompt_ids(ckpt: Checkpoint, prompt: str | None, batch: int) -> torch.Tensor:
    """The decoder's start: [DEC] followed by the prompt's tokens (as transformers' BLIP does).

    A prompt that fills the decoder's positions (nothing left to write) is a TextError; a caption
    longer than the room left is capped by :func:`~assistant.vision.tasks.generation.generate`.
    """
    text = ckpt.text_config
    if prompt:
        ids = ckpt.tokenizer(check_text(prompt, "prompt"), return_tensors="pt")["input_ids"][:, :-1]
        if ids.shape[1] >= text.max_position_embeddings:
            raise TextError(f"the prompt is {ids.shape[1]} tokens long; this model reads at most "
                            f"{text.max_position_embeddings - 1}")
    else:
        ids = torch.tensor([[text.bos_token_id]])
    ids = ids.clone()
    ids[:, 0] = text.bos_token_id
    return ids.repeat(batch, 1).to(ckpt.device)


@torch.inference_mode()
def caption_embeds(
    ckpt: Checkpoint,
    image_embeds: torch.Tensor,
    settings: GenerationSettings,
    prompt: str | None = None,
) -> list[tuple[str, float]]:
    """Captions and confidences for a batch of encoded images.

    The confidence is ``exp(mean log-probability)`` of the caption's own tokens (prompt excluded, end
    token included) under the model: the geometric-mean per-token probability, in (0, 1].
    """
    ckpt.require(CAPTION)
    batch = image_embeds.shape[0]
    start = prompt_ids(ckpt, prompt, batch)
    states_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    sequences, total, count = generate_scored(ckpt, start, image_embeds, states_mask, settings)
    texts = ckpt.tokenizer.batch_decode(sequences, skip_special_tokens=True)
    confidences = torch.exp(total / count).tolist()
    return [(t.strip(), float(c)) for t, c in zip(texts, confidences, strict=True)]

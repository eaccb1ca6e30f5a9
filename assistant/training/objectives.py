"""BLIP's training objectives, written once for every BLIP checkpoint that has the heads they need.

- ITC: image-text contrastive loss over the batch, with a learned temperature; captions of the same
  image all count as positives.
- ITM: binary match/no-match on the image-grounded text encoder, with hard negatives mined from the ITC
  similarities (a negative is drawn with probability proportional to how similar it looks).
- LM: the image-grounded decoder's next-token loss with label smoothing (captioning).
- VQA: the same decoder writing the answer, conditioned on the question encoded with the image.
- SCST (optional, after the others): self-critical sequence training of the decoder, a policy gradient
  that raises the probability of sampled captions scoring above their siblings on a reward (CIDEr-D).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from assistant.vision.models.parts import grounded_states
from assistant.vision.tasks.generation import until_end


def itc_loss(
    image_feat: torch.Tensor, text_feat: torch.Tensor, image_ids: torch.Tensor, temperature: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric contrastive loss; returns (loss, image->text similarity matrix for mining)."""
    sim_i2t = image_feat @ text_feat.t() / temperature
    positives = (image_ids[:, None] == image_ids[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(sim_i2t.t(), dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2, sim_i2t


def _sample_negatives(sim: torch.Tensor, same: torch.Tensor, random_share: float = 0.0) -> torch.Tensor:
    weights = torch.softmax(sim.float(), dim=1).masked_fill(same, 0.0) + 1e-9
    weights = weights.masked_fill(same, 0.0)
    if random_share > 0:
        # Mix in uniformly drawn negatives: a young ITM head facing only hard negatives (often true
        # descriptions of a similar photo) stalls at the label prior; easy ones give it a first signal.
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        uniform = (~same).float()
        uniform = uniform / uniform.sum(dim=1, keepdim=True).clamp(min=1.0)
        weights = (1 - random_share) * weights + random_share * uniform
    # a row with no valid negative (every item of the batch is the same image) falls back to uniform
    empty = weights.sum(dim=1) == 0
    weights[empty] = (~same[empty]).float() + 1e-9
    return torch.multinomial(weights, 1).squeeze(1)


def itm_logits(
    model: nn.Module, image_embeds: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    return model.itm_head(grounded_states(model, image_embeds, ids, mask)[:, 0, :])


def itm_loss(
    model: nn.Module,
    image_embeds: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    image_ids: torch.Tensor,
    sim_i2t: torch.Tensor,
    count: int | None = None,
    random_share: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ITM on positives plus one hard negative text per image and one hard negative image per text.

    With ``count``, only the first ``count`` pairs are scored (negatives still come from the whole batch).
    ``random_share`` of the negative draws are uniform instead of in proportion to ITC similarity.
    """
    k = count or ids.shape[0]
    with torch.no_grad():
        same = image_ids[:, None] == image_ids[None, :]
        neg_text = _sample_negatives(sim_i2t[:k], same[:k], random_share)
        neg_image = _sample_negatives(sim_i2t.t()[:k], same[:k], random_share)
    embeds = torch.cat([image_embeds[:k], image_embeds[:k], image_embeds[neg_image]])
    all_ids = torch.cat([ids[:k], ids[neg_text], ids[:k]])
    all_mask = torch.cat([mask[:k], mask[neg_text], mask[:k]])
    logits = itm_logits(model, embeds, all_ids, all_mask)
    labels = torch.cat([torch.ones(k), torch.zeros(2 * k)]).long().to(logits.device)
    loss = F.cross_entropy(logits.float(), labels)
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return loss, accuracy


def decoder_loss(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    states: torch.Tensor,
    states_mask: torch.Tensor,
    bos_token_id: int,
    pad_token_id: int,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Next-token loss of the decoder on ``ids`` ([CLS] text [SEP], the [CLS] replaced by [DEC])."""
    dec_ids = ids.clone()
    dec_ids[:, 0] = bos_token_id
    targets = mask[:, 1:].bool()
    logits = _next_token_logits(model, dec_ids, mask, states, states_mask, targets)
    return F.cross_entropy(logits, dec_ids[:, 1:][targets], label_smoothing=label_smoothing)


def _next_token_logits(
    model: nn.Module,
    ids: torch.Tensor,
    attention: torch.Tensor,
    states: torch.Tensor,
    states_mask: torch.Tensor,
    where: torch.Tensor,
) -> torch.Tensor:
    """The decoder's float32 logits for the tokens ``ids[:, 1:][where]``, one row per token."""
    decoder = model.text_decoder
    hidden = decoder.bert(
        input_ids=ids,
        attention_mask=attention,
        encoder_hidden_states=states,
        encoder_attention_mask=states_mask,
        is_decoder=True,
        return_dict=True,
    ).last_hidden_state
    # The LM head (hidden x vocabulary) only where a token is predicted: padding is about a third of a
    # batch of captions, and the head is a quarter of the decoder's training step.
    return decoder.cls(hidden[:, :-1][where]).float()


def lm_loss(
    model: nn.Module,
    image_embeds: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    text = model.config.text_config
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    return decoder_loss(
        model, ids, mask, image_embeds, image_mask, text.bos_token_id, text.pad_token_id, label_smoothing
    )


def vqa_loss(
    model: nn.Module,
    image_embeds: torch.Tensor,
    q_ids: torch.Tensor,
    q_mask: torch.Tensor,
    a_ids: torch.Tensor,
    a_mask: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    text = model.config.text_config
    states = grounded_states(model, image_embeds, q_ids, q_mask)
    return decoder_loss(
        model, a_ids, a_mask, states, q_mask, text.bos_token_id, text.pad_token_id, label_smoothing
    )


def scst_loss(
    model: nn.Module,
    image_embeds: torch.Tensor,
    reward: Callable[[list[str], list[int]], Sequence[float]],
    decode: Callable[[torch.Tensor], list[str]],
    samples: int,
    max_new_tokens: int,
    top_p: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-critical loss over ``samples`` captions sampled per image; returns (loss, mean reward).

    ``temperature`` < 1 (and ``top_p`` < 1) sample from a sharpened policy, whose log-probabilities the
    loss then raises: a decoder trained with label smoothing spreads a tenth of its probability over the
    whole vocabulary, and its pure samples are mostly noise (CIDEr-D 0.10 on Flickr8k train images,
    against 0.54 at temperature 0.7 and 0.54 for greedy captions).

    Each image's baseline is the mean reward of its other samples (Luo, 2020: "a better variant of
    self-critical sequence training"), which needs no extra greedy decode. The loss is the
    advantage-weighted log-likelihood of the sampled tokens, averaged over tokens, as Rennie et al.
    ``reward(texts, image_indices)`` scores the decoded samples (``decode(sequences)``).
    """
    if samples < 2:
        raise ValueError("SCST needs at least 2 samples per image (the baseline is the others' mean)")
    text = model.config.text_config
    n = image_embeds.shape[0]
    states = image_embeds.repeat_interleave(samples, dim=0)
    states_mask = torch.ones(states.shape[:-1], dtype=torch.long, device=states.device)
    start = torch.full((n * samples, 1), text.bos_token_id, dtype=torch.long, device=states.device)
    with torch.no_grad():
        seqs = model.text_decoder.generate(
            input_ids=start,
            encoder_hidden_states=states.detach(),
            encoder_attention_mask=states_mask,
            do_sample=True,
            top_k=0,
            top_p=top_p,
            temperature=temperature,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=text.sep_token_id,
            pad_token_id=text.pad_token_id,
        )
    owners = torch.arange(n).repeat_interleave(samples).tolist()
    rewards = torch.tensor(reward(decode(seqs), owners), dtype=torch.float32, device=states.device)
    rewards = rewards.view(n, samples)
    advantage = (rewards - (rewards.sum(dim=1, keepdim=True) - rewards) / (samples - 1)).view(-1)
    # the tokens after [DEC] up to and including the first [SEP] count
    target = seqs[:, 1:]
    counted = until_end(target, text.sep_token_id)
    attention = torch.cat([torch.ones_like(seqs[:, :1]), counted.long()], dim=1)
    logits = _next_token_logits(model, seqs, attention, states, states_mask, counted) / temperature
    token_lp = logits.gather(-1, target[counted].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    token_adv = advantage[:, None].expand_as(target)[counted]
    return -(token_adv * token_lp).sum() / counted.sum().clamp(min=1), rewards.mean()

"""Visual question answering, BLIP's way: the question is encoded with the image, then an answer decoder
either writes the answer or scores a given list of candidate answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blipkit import defaults
from blipkit.runtime.checkpoint import VQA, Checkpoint
from blipkit.runtime.encoding import check_text, tokenize
from blipkit.tasks.generation import GenerationSettings, generate, sequence_logprobs


def encode_questions(
    ckpt: Checkpoint, image_embeds: torch.Tensor, questions: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = tokenize(ckpt, [check_text(q, "question") for q in questions])
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    states = ckpt.model.text_encoder(
        input_ids=ids,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=image_mask,
        return_dict=True,
    ).last_hidden_state
    return states, mask


def _start(ckpt: Checkpoint, batch: int) -> torch.Tensor:
    return torch.full((batch, 1), ckpt.text_config.bos_token_id, dtype=torch.long, device=ckpt.device)


@torch.inference_mode()
def answer(
    ckpt: Checkpoint,
    image_embeds: torch.Tensor,
    questions: Sequence[str],
    settings: GenerationSettings | None = None,
) -> list[tuple[str, float]]:
    """Open-ended answers (and their confidence, as for captions) for image/question pairs."""
    ckpt.require(VQA)
    settings = settings or GenerationSettings(
        decoding="beam",
        max_new_tokens=defaults.VQA_MAX_NEW_TOKENS,
        min_new_tokens=1,
        no_repeat_ngram_size=0,
        no_repeat_words=False,
    )
    states, mask = encode_questions(ckpt, image_embeds, questions)
    start = _start(ckpt, len(questions))
    sequences = generate(ckpt, start, states, mask, settings)
    total, count = sequence_logprobs(ckpt, sequences, 1, states, mask)
    texts = ckpt.tokenizer.batch_decode(sequences, skip_special_tokens=True)
    return [(t.strip(), float(c)) for t, c in zip(texts, torch.exp(total / count).tolist(), strict=True)]


@torch.inference_mode()
def rank_answers(
    ckpt: Checkpoint,
    image_embeds: torch.Tensor,
    questions: Sequence[str],
    candidates: Sequence[str],
) -> list[dict[str, float]]:
    """Score every candidate answer for each question, as BLIP's paper evaluates VQA.

    A candidate's score is the decoder's log-likelihood of its tokens (end token included); the returned
    values are those scores softmax-normalised over the candidates, so they sum to 1 per question.
    """
    ckpt.require(VQA)
    if not candidates:
        raise ValueError("candidates is empty")
    cands = [check_text(c, "candidate answer") for c in candidates]
    states, mask = encode_questions(ckpt, image_embeds, questions)
    ids, _ = tokenize(ckpt, cands)
    ids = ids.clone()
    ids[:, 0] = ckpt.text_config.bos_token_id
    n_q, n_c = len(questions), len(cands)
    # every (question, candidate) pair as one row
    seqs = ids.repeat(n_q, 1)
    rep_states = states.repeat_interleave(n_c, dim=0)
    rep_mask = mask.repeat_interleave(n_c, dim=0)
    total, _ = sequence_logprobs(ckpt, seqs, 1, rep_states, rep_mask)
    probs = torch.softmax(total.view(n_q, n_c), dim=-1).tolist()
    return [dict(zip(cands, row, strict=True)) for row in probs]

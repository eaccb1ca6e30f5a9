"""Visual question answering, BLIP's way: the question is encoded with the image, then an answer decoder
either writes the answer or scores a given list of candidate answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from assistant.vision import defaults
from assistant.vision.runtime.checkpoint import VQA, Checkpoint
from assistant.vision.runtime.encoding import check_text, ground_texts, tokenize
from assistant.vision.tasks.generation import GenerationSettings, generate, sequence_logprobs


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
        no_repeat_words=True,  # "books, paper, paper, paper": no DAQUAR answer names a thing twice
    )
    states, mask = ground_texts(ckpt, image_embeds, questions, "question")
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
    k: int | None = None,
) -> list[dict[str, float]]:
    """Score candidate answers for each question, as BLIP ranks them (``rank_answer`` with ``k_test``).

    A candidate's score is the decoder's log-likelihood of its tokens (end token included). With more
    than ``k`` candidates (default :data:`~assistant.vision.defaults.VQA_RANK_K`), one decoder step first
    ranks
    them by their first token's probability, and only the best ``k`` are scored in full; the others get
    probability 0 (a full score can only be lower than its first token's). The returned values are the
    scores softmax-normalised over the distinct candidates, so they sum to 1 per question.
    """
    ckpt.require(VQA)
    if not candidates:
        raise ValueError("candidates is empty")
    k = defaults.VQA_RANK_K if k is None else k
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # a repeated candidate would take two shares of the softmax and still be one key of the result
    cands = list(dict.fromkeys(check_text(c, "candidate answer") for c in candidates))
    states, mask = ground_texts(ckpt, image_embeds, questions, "question")
    ids, cand_mask = tokenize(ckpt, cands)
    ids = ids.clone()
    ids[:, 0] = ckpt.text_config.bos_token_id
    n_q, n_c = len(questions), len(cands)
    if n_c <= k:
        picked = torch.arange(n_c, device=ids.device).expand(n_q, n_c)
    else:
        logits = ckpt.model.text_decoder(
            input_ids=_start(ckpt, n_q),
            encoder_hidden_states=states,
            encoder_attention_mask=mask,
            return_dict=True,
        ).logits[:, -1]
        # a row's logits rank its tokens as its probabilities do: no softmax needed to pick the top k
        picked = logits[:, ids[:, 1]].topk(k, dim=-1).indices
    width = picked.shape[1]
    # each (question, picked candidate) pair as one row, no longer than the longest picked candidate
    rows = picked.reshape(-1)
    seqs = ids[rows, : int(cand_mask[rows].sum(dim=1).max())]
    total, _ = sequence_logprobs(
        ckpt, seqs, 1, states.repeat_interleave(width, dim=0), mask.repeat_interleave(width, dim=0)
    )
    scores = torch.full((n_q, n_c), float("-inf"), device=total.device)
    scores.scatter_(1, picked, total.view(n_q, width).float())
    probs = torch.softmax(scores, dim=-1).tolist()
    return [dict(zip(cands, row, strict=True)) for row in probs]

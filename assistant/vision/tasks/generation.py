"""Decoding settings shared by captioning and VQA, and the confidence score of a generated text."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from assistant.vision import defaults
from assistant.vision.defaults import DECODINGS, Decoding
from assistant.vision.runtime import interrupt
from assistant.vision.runtime.checkpoint import Checkpoint
from assistant.vision.tasks import greedy


class _AskToGoOn(LogitsProcessor):
    """Before each token: :func:`~assistant.vision.runtime.interrupt.check`."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        interrupt.check()
        return scores


@dataclass(frozen=True)
class GenerationSettings:
    """How to decode. ``beam`` is deterministic and the best for captions; ``nucleus`` gives variety
    (BLIP's CapFilt uses it to write diverse synthetic captions)."""

    decoding: Decoding = defaults.DECODING
    num_beams: int = defaults.NUM_BEAMS
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    min_new_tokens: int = defaults.MIN_NEW_TOKENS
    top_p: float = defaults.TOP_P
    temperature: float = defaults.TEMPERATURE
    repetition_penalty: float = defaults.REPETITION_PENALTY
    no_repeat_ngram_size: int = defaults.NO_REPEAT_NGRAM_SIZE
    no_repeat_words: bool = defaults.NO_REPEAT_WORDS

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, not {self.decoding!r}")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise ValueError("need max_new_tokens >= 1 and min_new_tokens >= 0")
        if self.num_beams < 1 or self.no_repeat_ngram_size < 0:
            raise ValueError("need num_beams >= 1 and no_repeat_ngram_size >= 0")
        # checked for every decoding, so a bad value fails before any model work, not deep in generate()
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p is the probability mass sampled from: 0 < top_p <= 1, not {self.top_p}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, not {self.temperature} (for no randomness, use "
                             "decoding='greedy' or 'beam')")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 is none), not {self.repetition_penalty}")
        if self.min_new_tokens > self.max_new_tokens:
            # asking for short texts lowers the default minimum with it
            object.__setattr__(self, "min_new_tokens", self.max_new_tokens)

    def generate_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        if self.decoding == "beam":
            kwargs.update(num_beams=self.num_beams, do_sample=False)
        elif self.decoding == "nucleus":
            kwargs.update(
                do_sample=True, top_p=self.top_p, temperature=self.temperature, top_k=0, num_beams=1
            )
        else:
            kwargs.update(do_sample=False, num_beams=1)
        return kwargs

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def generate(
    ckpt: Checkpoint,
    input_ids: torch.Tensor,
    states: torch.Tensor,
    states_mask: torch.Tensor,
    settings: GenerationSettings,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run BLIP's text decoder conditioned on ``states`` exactly as transformers' BLIP ``generate`` does."""
    return _decode(ckpt, input_ids, states, states_mask, settings, attention_mask=attention_mask)


def generate_scored(
    ckpt: Checkpoint,
    input_ids: torch.Tensor,
    states: torch.Tensor,
    states_mask: torch.Tensor,
    settings: GenerationSettings,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`generate`, with each sequence's :func:`sequence_logprobs` (sum, count).

    Greedy decoding already computed the model's raw logits for every token it picked, so they are
    read from the decoding itself; a second teacher-forced pass over the text (about 15% of a brief
    built-in description) gives the same numbers. Beam and sampling still take that pass: their kept
    logits belong to beams or were drawn from, not to the final text.
    """
    if settings.decoding != "greedy":
        sequences = generate(ckpt, input_ids, states, states_mask, settings)
        return sequences, *sequence_logprobs(ckpt, sequences, input_ids.shape[1], states, states_mask)
    out = _decode(ckpt, input_ids, states, states_mask, settings, output_logits=True,
                  return_dict_in_generate=True)
    sequences = out.sequences
    target = sequences[:, input_ids.shape[1]:]
    counted = until_end(target, ckpt.text_config.sep_token_id)
    logits = torch.stack(out.logits, dim=1).float()  # raw: before any penalty or mask
    picked = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    token_lp = (picked - torch.logsumexp(logits, dim=-1)) * counted
    return sequences, token_lp.sum(dim=1), counted.sum(dim=1).clamp(min=1)


def _decode(ckpt: Checkpoint, input_ids: torch.Tensor, states: torch.Tensor, states_mask: torch.Tensor,
            settings: GenerationSettings, **extra: Any) -> Any:
    text = ckpt.text_config
    kwargs = settings.generate_kwargs()
    # The decoder has a fixed number of positions: a longer request is capped instead of crashing it.
    room = max(1, text.max_position_embeddings - input_ids.shape[1])
    kwargs["max_new_tokens"] = most = min(int(kwargs["max_new_tokens"]), room)
    least = min(int(kwargs.pop("min_new_tokens")), most)
    processors = LogitsProcessorList()
    if interrupt.asker() is not None:  # Stop or a newer request ends the decoding between tokens
        interrupt.check()
        processors.append(_AskToGoOn())
    if settings.no_repeat_words:
        processors.append(NoRepeatedWords(content_word_mask(ckpt).to(input_ids.device), input_ids.shape[1]))
    if least > 0:
        # instead of transformers' min_new_tokens, whose processor builds a vocabulary-sized isin() mask at
        # every step (0.4 ms a token, about 3% of a brief built-in description)
        processors.append(NoEndBefore(text.sep_token_id, input_ids.shape[1] + least))
    own_loop = (extra.get("attention_mask") is None
                and set(extra) <= {"attention_mask", "output_logits", "return_dict_in_generate"}
                and greedy.applies(ckpt, input_ids, int(kwargs.get("num_beams", 1)),
                                   bool(kwargs.get("do_sample")), float(kwargs["repetition_penalty"]))
                and bool(states_mask.all()))
    if own_loop:  # the one decoding every key press runs (assistant.vision.tasks.greedy)
        out = greedy.decode(ckpt, input_ids, states, most, int(kwargs["no_repeat_ngram_size"]), processors,
                            text.sep_token_id)
        return out if extra.get("return_dict_in_generate") else out.sequences
    return ckpt.model.text_decoder.generate(
        input_ids=input_ids,
        eos_token_id=text.sep_token_id,
        pad_token_id=text.pad_token_id,
        encoder_hidden_states=states,
        encoder_attention_mask=states_mask,
        logits_processor=processors,
        **kwargs,
        **extra,
    )


# Words a text may well use twice ("a man in a red shirt sits in a chair"). Any other whole word said
# twice is, in a short caption, nearly always a loop ("a blue shirt and black shirt is wearing a shirt").
_FUNCTION_WORDS_TEXT = """a an the and or but of in on at to with by for from into onto over under near behind
front top side next while as is are was were be been being it its he she his her they their them this that
these those there here one two three four some other another each up down out off"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


def content_word_mask(ckpt: Checkpoint) -> torch.Tensor:
    """``mask[token]`` is true for the tokenizer's whole-word, alphabetic, non-function-word tokens."""
    mask = ckpt.extras.get("content_word_mask")
    if not isinstance(mask, torch.Tensor):
        vocab = ckpt.tokenizer.get_vocab()
        special = set(ckpt.tokenizer.all_special_tokens)
        mask = torch.zeros(max(ckpt.text_config.vocab_size, len(vocab)), dtype=torch.bool)
        for token, index in vocab.items():
            if token.isalpha() and token not in FUNCTION_WORDS and token not in special:
                mask[index] = True
        ckpt.extras["content_word_mask"] = mask
    return mask


class NoRepeatedWords(LogitsProcessor):
    """Forbid a content word (see :func:`content_word_mask`) the generated text already holds.

    Only tokens after ``prefix_len`` count, so a prompt's words stay usable. Sub-word pieces (``##s``)
    are never content words: "dog ... dogs" stays possible.
    """

    def __init__(self, content: torch.Tensor, prefix_len: int) -> None:
        self.content = content
        self.prefix_len = prefix_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prefix_len :]
        if generated.shape[1] == 0:
            return scores
        used = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        used.scatter_(1, generated, True)
        used &= self.content[: scores.shape[1]]
        return scores.masked_fill(used, float("-inf"))


class NoEndBefore(LogitsProcessor):
    """The end token is impossible until the text holds ``length`` tokens (prompt included)."""

    def __init__(self, end_token_id: int, length: int) -> None:
        self.end_token_id, self.length = end_token_id, length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] >= self.length:
            return scores
        # not in place: the decoding keeps the raw logits it passes here (generate_scored reads them)
        end = torch.tensor([self.end_token_id], device=scores.device)
        return scores.index_fill(1, end, float("-inf"))


def until_end(tokens: torch.Tensor, end_token_id: int) -> torch.Tensor:
    """True for each token that no end token precedes in its row (the first end token included)."""
    is_end = (tokens == end_token_id).long()
    return (is_end.cumsum(dim=1) - is_end) == 0


def sequence_logprobs(
    ckpt: Checkpoint,
    sequences: torch.Tensor,
    prefix_len: int,
    states: torch.Tensor,
    states_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of the log-probabilities of each sequence's tokens after ``prefix_len``.

    Tokens up to and including the first end token ([SEP]) count; padding after it does not. This is
    the model's own probability of the text, before any decoding-time penalty.
    """
    text = ckpt.text_config
    target = sequences[:, prefix_len:]
    counted = until_end(target, text.sep_token_id)
    attention = torch.ones_like(sequences)
    attention[:, prefix_len:] = counted.long()
    logits = ckpt.model.text_decoder(
        input_ids=sequences,
        attention_mask=attention,
        encoder_hidden_states=states,
        encoder_attention_mask=states_mask,
        return_dict=True,
    ).logits
    # gather minus logsumexp: a full log-softmax would hold another rows x length x vocabulary copy
    logits = logits[:, prefix_len - 1 : -1]
    picked = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1).float()
    token_lp = (picked - torch.logsumexp(logits.float(), dim=-1)) * counted
    return token_lp.sum(dim=1), counted.sum(dim=1).clamp(min=1)

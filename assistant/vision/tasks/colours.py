"""Colour answers checked against the picture's own pixels.

A small model answers "what colour is the shirt?" from its language prior as much as from the picture:
the built-in model said "blue" to 61 of 153 colour questions about Flickr8k test photos, 18 of which
were about something blue. The pixels know better, if one knows where to look. The question's tokens
cross-attend to the image's grid of patches in the image-grounded text encoder; their attention, summed
over the last layers and sharpened, marks the region the question is about. Each colour the model could
answer is then scored by the decoder's likelihood (:func:`~assistant.vision.tasks.ask.rank_answers`)
times a power of the share of that region's pixels that could be called by that colour. A colour that no
pixel there has loses, and one that no pixel of the whole picture has is never the answer; among the
colours present, the model still decides (a shadowed red shirt has "brown" pixels too).

The constants were chosen on Flickr8k **val** colour questions (160): the last three cross-attention
layers, every word of the question, attention to the fourth power, the share to the power 0.5 with a
floor of 0.003. DAQUAR's train questions cannot choose them: the model has learnt their answers by heart
(its own answers score 36.8% there, 23.4% on DAQUAR test). tests/benchmarks/README.md has the figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from assistant.vision.io import THUMBNAIL_SIDE
from assistant.vision.runtime.checkpoint import Checkpoint
from assistant.vision.runtime.encoding import tokenize
from assistant.vision.tasks.ask import rank_answers

# What a colour answer can be; "grey" is read as "gray".
COLOURS: tuple[str, ...] = ("black", "white", "gray", "brown", "tan", "red", "orange", "yellow", "green",
                            "teal", "blue", "purple", "pink")
SPELLINGS = {"grey": "gray"}
LAYERS = 3  # the last cross-attention layers whose attention marks the region
SHARPEN = 4.0
WEIGHT = 0.5
FLOOR = 0.003

# A picture with (almost) no pixel of a colour has nothing of that colour: below this share of its pixels,
# "is there a red car?" is answered "no" whatever the model's prior says. 0.2% is 18 of the thumbnail's
# 9,216 pixels, more than the stray pixels of shape edges and JPEG noise.
ABSENT_SHARE = 0.002
ABSENT_CONFIDENCE = 0.95
# When the picture does have the colour, "is there a red car?" is "yes" if "what color is the car?",
# answered where that question looks (:func:`grounded_colour`), is red this surely. Chosen on 1,200
# easy-vqa **train** presence questions: 90.8% right before, 99.3% with this (99.2-99.3% from 0.3 to 0.95).
SEEN_CONFIDENCE = 0.8

_QUESTION = re.compile(r"\bcolou?rs?\b", re.IGNORECASE)
_ARTICLE = r"(?:an? |any |some )?"
_PRESENCE = re.compile(
    rf"^(?:is|are) there (?P<neg>not |no )?{_ARTICLE}(?P<colour>\w+)\b"
    rf"|^(?:does|do) (?:the |this )?(?:image|picture|photo) (?P<neg2>not )?(?:contain|have|show) {_ARTICLE}"
    r"(?P<colour2>\w+)\b"
    rf"|^(?:is|are) (?P<neg3>not |no )?{_ARTICLE}(?P<colour3>\w+)\b(?=.*\b(?:present|visible)\b)",
    re.IGNORECASE,
)


def is_colour_question(question: str) -> bool:
    return bool(_QUESTION.search(question))


# "what color is the car?", "what colours are her shoes", "what is the colour of the sofa?"; not "what is
# red in colour?" (a thing) nor "is the car red or blue?" (a choice)
_ASKS_FOR_COLOUR = re.compile(r"^(?:what|which) colou?rs? (?:is|are|was|were|does|do)\b"
                              r"|^what(?: is|'s) the colou?rs? of\b", re.IGNORECASE)


def asks_for_colour(question: str) -> bool:
    """Whether the answer to ``question`` is a colour."""
    return bool(_ASKS_FOR_COLOUR.match(question.strip()))


def colour_word(answer: str) -> str | None:
    """The colour an answer names when it is one colour word ("grey" -> "gray"), else None."""
    word = answer.strip().lower().rstrip(".")
    word = SPELLINGS.get(word, word)
    return word if word in COLOURS else None


def colour_presence(question: str) -> tuple[str, bool] | None:
    """For "is there a red car?" ("are there any blue shapes", "does the image contain a gray shape?",
    "is a red car visible?"):
    the colour asked about and whether the question is negated ("is there not a red car?"); None for
    any other question."""
    m = _PRESENCE.match(question.strip().lower())
    if m is None:
        return None
    colour = colour_word(m.group("colour") or m.group("colour2") or m.group("colour3") or "")
    if colour is None:
        return None
    return colour, bool(m.group("neg") or m.group("neg2") or m.group("neg3"))


# Words after the colour that name no thing ("is there any red in the picture?").
_NOT_A_THING = frozenset({"in", "on", "at", "here", "there", "anywhere", "somewhere", "visible", "present",
                          "color", "colour", "colors", "colours", "to", "or", "and", "the", "this", "that"})


def thing_colour_question(question: str) -> str | None:
    """For "is there a red car in the picture?": "what color is the car?", the question whose grounded
    answer settles it when the picture has red; None when no thing follows the colour."""
    text = question.strip().lower()
    m = _PRESENCE.match(text)
    if m is None or colour_presence(question) is None:
        return None
    thing = re.match(r"\s*([a-z]+)", text[m.end():])
    if thing is None or thing.group(1) in _NOT_A_THING:
        return None
    word = thing.group(1)
    return f"what color {'are' if word.endswith('s') and not word.endswith('ss') else 'is'} the {word}?"


def present(pixels: np.ndarray) -> frozenset[str]:
    """The colours the picture has: those that more than :data:`ABSENT_SHARE` of its pixels could be
    called."""
    return _present(memberships(pixels))


def _present(named: np.ndarray) -> frozenset[str]:
    shares = named.mean(axis=(0, 1))
    return frozenset(c for c, share in zip(COLOURS, shares.tolist(), strict=True) if share >= ABSENT_SHARE)


def memberships(pixels: np.ndarray) -> np.ndarray:
    """For each pixel of an (h, w, 3) uint8 array, whether it could be called by each of :data:`COLOURS`:
    (h, w, len(COLOURS)) of 0/1. The ranges overlap on purpose (deep dark red is red and brown)."""
    rgb = pixels.astype(np.float32) / 255.0
    top, low = rgb.max(-1), rgb.min(-1)
    v = top
    span = top - low
    s = np.where(top > 0, span / np.maximum(top, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    d = np.maximum(span, 1e-6)
    h = np.where(top == r, ((g - b) / d) % 6, np.where(top == g, (b - r) / d + 2, (r - g) / d + 4)) * 60.0
    hue = lambda lo, hi: (h >= lo) & (h < hi) if lo < hi else (h >= lo) | (h < hi)  # noqa: E731
    tinted = s >= 0.2
    by_name = {
        "black": v < 0.22,
        "white": (s < 0.2) & (v > 0.72),
        "gray": (s < 0.22) & (v > 0.18) & (v < 0.85),
        # a dark red (v < 0.7) is red only when deep (s >= 0.8); duller, it is brown ((165, 42, 42) is CSS
        # "brown", easy-vqa's). Bright reds stay red down to s 0.35: photos' red coats have highlights.
        "red": hue(340, 15) & (((v >= 0.7) & (s >= 0.35)) | ((s >= 0.8) & (v >= 0.3))),
        "brown": hue(345, 45) & tinted & (v >= 0.15) & (v < 0.7),
        "tan": hue(15, 50) & (s >= 0.15) & (s < 0.55) & (v >= 0.5),
        "orange": hue(12, 42) & (s >= 0.5) & (v >= 0.55),
        "yellow": hue(42, 72) & (s >= 0.3) & (v >= 0.45),
        "green": hue(72, 165) & tinted & (v >= 0.15),
        "teal": hue(160, 200) & (s >= 0.35) & (v >= 0.2),
        "blue": hue(185, 260) & tinted & (v >= 0.15),
        "purple": hue(260, 315) & tinted & (v >= 0.15),
        "pink": (hue(315, 345) & tinted & (v >= 0.4)) | (hue(290, 15) & (s >= 0.15) & (s < 0.6) & (v >= 0.6)),
    }
    return np.stack([by_name[c] for c in COLOURS], axis=-1).astype(np.float32)


def _project(layer: Any, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in float32 whatever precision the fast path left the layer in: a plain Linear it kept
    (on a bfloat16 plan the absorbed cross-attention keeps its key projection's weight in bfloat16 and its
    bias in float32) is applied in float32; a fast layer converts its input itself."""
    if isinstance(layer, torch.nn.Linear):
        bias = None if layer.bias is None else layer.bias.float()
        return torch.nn.functional.linear(x.float(), layer.weight.float(), bias)
    return layer(x).float()


@contextmanager
def _cross_attention(ckpt: Checkpoint) -> Iterator[list[torch.Tensor]]:
    """Collects, while open, each cross-attention layer's attention in the first text-encoder pass (batch,
    heads, text tokens, image tokens), recomputed from its query and key projections whatever attention
    implementation the layer runs. Only the first pass: the decoder's passes that follow may run the
    same (shared) layers."""
    caught: list[torch.Tensor] = []
    layers = [layer.crossattention.self for layer in ckpt.model.text_encoder.encoder.layer
              if getattr(layer, "crossattention", None) is not None]

    def hook(module: Any, args: tuple, kwargs: dict, _out: Any) -> None:
        states = kwargs.get("encoder_hidden_states")
        hidden = args[0] if args else kwargs.get("hidden_states")
        if states is None or hidden is None or len(caught) >= len(layers):
            return
        heads = module.num_attention_heads
        q, k = _project(module.query, hidden), _project(module.key, states)
        dim = q.shape[-1] // heads
        q = q.view(*q.shape[:2], heads, dim).transpose(1, 2)
        k = k.view(*k.shape[:2], heads, dim).transpose(1, 2)
        caught.append(torch.softmax(q @ k.transpose(-1, -2) * dim**-0.5, dim=-1))

    handles = [module.register_forward_hook(hook, with_kwargs=True) for module in layers]
    try:
        yield caught
    finally:
        for handle in handles:
            handle.remove()


def _region(attention: list[torch.Tensor], ids: torch.Tensor, ckpt: Checkpoint) -> np.ndarray | None:
    """Where one question looks: a (THUMBNAIL_SIDE, THUMBNAIL_SIDE) weight map summing to 1, or None when
    the image tokens are not a square grid after the first (global) token."""
    att = torch.stack(attention[-LAYERS:])[:, 0].mean(1)  # (layers, text, image tokens), heads averaged
    special = {ckpt.tokenizer.cls_token_id, ckpt.tokenizer.sep_token_id, ckpt.tokenizer.pad_token_id,
               ckpt.text_config.bos_token_id, *ckpt.tokenizer.convert_tokens_to_ids(["?", "[ENC]"])}
    words = [i for i, t in enumerate(ids.tolist()) if t not in special]
    grid = att[:, words or [0], 1:].mean((0, 1))
    side = round(grid.numel() ** 0.5)
    if side * side != grid.numel():
        return None
    weights = grid.double().pow(SHARPEN).view(1, 1, side, side)
    side_px = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    weights = torch.nn.functional.interpolate(weights, size=side_px, mode="nearest")[0, 0]
    return (weights / weights.sum()).numpy()


def colour_shares(region: np.ndarray, pixels: np.ndarray) -> dict[str, float]:
    """The share of the region's weight on pixels that could be called by each colour."""
    return _shares(region, memberships(pixels))


def _shares(region: np.ndarray, named: np.ndarray) -> dict[str, float]:
    shares = (named * region[..., None]).sum(axis=(0, 1))
    return dict(zip(COLOURS, shares.tolist(), strict=True))


def weighs_regions(ckpt: Checkpoint) -> bool:
    """Whether colour answers weigh the region's pixels: for the built-in model (and its personal
    versions), on which the constants were chosen and measured. A Salesforce BLIP question model, trained
    on VQAv2's colours, only has colours that no pixel of the picture has taken away (``weight=0``)."""
    from assistant.vision.models.builtin import BuiltinBlipModel

    return isinstance(ckpt.model, BuiltinBlipModel)


@torch.inference_mode()
def grounded_colour(ckpt: Checkpoint, image_embeds: torch.Tensor, question: str, pixels: np.ndarray,
                    weight: float = WEIGHT) -> tuple[str, float, dict[str, float]] | None:
    """The colour answer to ``question`` about one image (``image_embeds`` of shape (1, tokens, width),
    ``pixels`` its :func:`~assistant.vision.io.thumbnail`), its confidence and every colour's score;
    None when the model's image tokens give no region to look at."""
    with _cross_attention(ckpt) as attention:
        scores = rank_answers(ckpt, image_embeds, [question], list(COLOURS))[0]
    if not attention:
        return None
    ids, _mask = tokenize(ckpt, [question])
    region = _region(attention, ids[0], ckpt)
    if region is None:
        return None
    named = memberships(pixels)
    shares = _shares(region, named)
    combined = torch.tensor([np.log(max(scores[c], 1e-9)) + weight * np.log(shares[c] + FLOOR)
                             for c in COLOURS], dtype=torch.float64)
    # A colour no pixel of the picture has is never the answer, as "is there a blue ...?" is "no" then.
    there = _present(named)
    if there:
        combined = combined.masked_fill(torch.tensor([c not in there for c in COLOURS]), float("-inf"))
    probs = torch.softmax(combined, dim=0).tolist()
    best = int(np.argmax(probs))
    return COLOURS[best], probs[best], dict(zip(COLOURS, probs, strict=True))

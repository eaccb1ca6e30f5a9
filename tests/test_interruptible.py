"""Decoding that a caller can end early (assistant.vision.tasks.generation.interruptible): Stop and a
newer request end the work between decoding steps, and nothing else changes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from assistant.vision.errors import Interrupted
from assistant.vision.runtime.interrupt import interruptible


@pytest.fixture(scope="module")
def blips(tiny_models):  # type: ignore[no-untyped-def]
    from assistant import vision

    torch.set_num_threads(1)
    return {"caption": vision.load(str(tiny_models["caption"]), "caption", fast=False),
            "vqa": vision.load(str(tiny_models["vqa"]), "vqa", fast=False)}


def _picture() -> Image.Image:
    return Image.effect_noise((64, 48), 60).convert("RGB")


def test_a_caption_is_ended_between_tokens_and_unchanged_when_not(blips) -> None:  # type: ignore[no-untyped-def]
    blip = blips["caption"]
    feats = blip.encode_images([_picture()])
    greedy = {"decoding": "greedy", "max_new_tokens": 12, "min_new_tokens": 12}
    plain = blip.caption(feats, **greedy)[0].caption
    asked: list[int] = []

    def after(n: int):  # type: ignore[no-untyped-def]
        def should_stop() -> bool:
            asked.append(1)
            return len(asked) > n
        return should_stop

    with interruptible(after(10_000)):
        assert blip.caption(feats, **greedy)[0].caption == plain
    assert len(asked) >= 12  # asked before the decoding and before each token
    asked.clear()
    with interruptible(after(3)), pytest.raises(Interrupted):
        blip.caption(feats, **greedy)
    assert len(asked) == 4  # ended at the third token's step, not after all twelve
    asked.clear()
    with interruptible(lambda: True), pytest.raises(Interrupted):
        blip.caption(feats, decoding="beam", max_new_tokens=12)
    # the hook is this block's only: outside it, decoding runs to its end
    assert blip.caption(feats, **greedy)[0].caption == plain


def test_a_generated_answer_is_ended_too(blips) -> None:  # type: ignore[no-untyped-def]
    blip = blips["vqa"]
    feats = blip.encode_images([_picture()])
    with interruptible(lambda: True), pytest.raises(Interrupted):
        blip.ask(feats, "what is in the picture?")
    assert blip.ask(feats, "what is in the picture?")[0].ok


def test_a_salesforce_vision_pass_is_ended_between_layers(blips) -> None:  # type: ignore[no-untyped-def]
    blip = blips["caption"]
    layers = len(blip.checkpoint.model.vision_model.encoder.layers)
    asked: list[int] = []

    def never() -> bool:
        asked.append(1)
        return False

    picture = _picture()
    with interruptible(never):
        kept = blip.encode_images([picture])
    assert len(asked) == layers  # once before each layer
    with interruptible(lambda: True), pytest.raises(Interrupted):
        blip.encode_images([_picture()])
    again = blip.encode_images([picture])  # outside the block: nothing asked, the same features
    assert torch.equal(again.embeds, kept.embeds) and len(asked) == layers

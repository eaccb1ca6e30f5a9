"""The engine's own greedy loop (assistant.vision.tasks.greedy) says what transformers' generate says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from assistant.vision.errors import Interrupted
from assistant.vision.runtime import interrupt
from assistant.vision.tasks import caption as caption_task
from assistant.vision.tasks import greedy
from assistant.vision.tasks.generation import GenerationSettings, generate_scored

GREEDY = GenerationSettings(decoding="greedy", max_new_tokens=12)


def _pictures(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray((rng.random((36, 44, 3)) * 255).astype("uint8")) for _ in range(n)]


def _with_generate(monkeypatch: pytest.MonkeyPatch, *args):  # type: ignore[no-untyped-def]
    """``generate_scored(*args)`` through transformers' generate."""
    with monkeypatch.context() as patched:
        patched.setattr(greedy, "applies", lambda *_: False)
        return generate_scored(*args)


@pytest.mark.parametrize("kind", ["builtin", "caption"])
def test_the_own_loop_writes_generate_s_tokens_with_its_logits(
        tiny_models: dict[str, Path], kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import vision

    blip = vision.load(str(tiny_models[kind]), "caption", fast=True)
    ckpt = blip.checkpoint
    used = []
    decode = greedy.decode
    monkeypatch.setattr(greedy, "decode", lambda *a, **k: used.append(1) or decode(*a, **k))
    for settings in (GREEDY, GenerationSettings(decoding="greedy", max_new_tokens=12, min_new_tokens=0,
                                                no_repeat_words=False, no_repeat_ngram_size=0)):
        for picture in _pictures(4):
            embeds = blip.encode_images([picture]).embeds
            start = caption_task.prompt_ids(ckpt, None, 1)
            mask = torch.ones(embeds.shape[:-1], dtype=torch.long)
            mine = generate_scored(ckpt, start, embeds, mask, settings)
            theirs = _with_generate(monkeypatch, ckpt, start, embeds, mask, settings)
            assert torch.equal(mine[0], theirs[0])
            torch.testing.assert_close(mine[1], theirs[1], rtol=1e-5, atol=1e-5)
            assert torch.equal(mine[2], theirs[2])
    assert len(used) == 8  # every one of them went through the own loop


def test_other_decodings_go_through_generate(tiny_models: dict[str, Path]) -> None:
    from assistant import vision

    fast = vision.load(str(tiny_models["builtin"]), "caption", fast=True).checkpoint
    plain = vision.load(str(tiny_models["builtin"]), "caption", fast=False).checkpoint
    one = torch.ones((1, 1), dtype=torch.long)
    assert greedy.applies(fast, one, 1, False, 1.0)
    assert not greedy.applies(plain, one, 1, False, 1.0)  # the float32 path
    assert not greedy.applies(fast, one, 3, False, 1.0)  # beams
    assert not greedy.applies(fast, one, 1, True, 1.0)  # sampling
    assert not greedy.applies(fast, one, 1, False, 1.2)  # a repetition penalty
    assert not greedy.applies(fast, torch.ones((2, 1), dtype=torch.long), 1, False, 1.0)  # a batch
    assert not greedy.applies(fast, torch.ones((1, 3), dtype=torch.long), 1, False, 1.0)  # a prompt


def test_stop_ends_the_own_loop_between_tokens(tiny_models: dict[str, Path]) -> None:
    from assistant import vision

    blip = vision.load(str(tiny_models["builtin"]), "caption", fast=True)
    embeds = blip.encode_images(_pictures(1)).embeds
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    settings = GenerationSettings(decoding="greedy", max_new_tokens=12, min_new_tokens=12)
    with pytest.raises(Interrupted), interrupt.interruptible(stop_after_three):
        caption_task.caption_embeds(blip.checkpoint, embeds, settings)
    assert 3 < len(asked) < 12

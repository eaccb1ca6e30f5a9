"""blipkit gives exactly what plain transformers code gives on the same checkpoint and inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import BertTokenizerFast
from transformers.models.blip import (
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
)

from assistant import vision


def _text(tok, text):
    enc = tok(text, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _plain(path, cls):
    model = cls.from_pretrained(path).eval()
    return model, BertTokenizerFast.from_pretrained(path), BlipImageProcessorPil.from_pretrained(path)


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
@pytest.mark.parametrize("prompt", [None, "a picture of"])
def test_caption_tokens_equal_transformers(tiny_models, images, decoding, prompt) -> None:
    model, tok, proc = _plain(tiny_models["caption"], BlipForConditionalGeneration)
    blip = vision.load(tiny_models["caption"])
    kwargs = {
        "max_new_tokens": 12,
        "min_new_tokens": 3,
        "no_repeat_ngram_size": 0,
        "num_beams": 3 if decoding == "beam" else 1,
    }
    # transformers knows no content-word guard: compare the plain decoding
    results = blip.caption(images, prompt=prompt, decoding=decoding, no_repeat_words=False, **kwargs)
    for image, result in zip(images, results, strict=True):
        inputs = proc(images=image, return_tensors="pt")
        if prompt:
            inputs.update(_text(tok, prompt))
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=False, **kwargs)
        assert result.caption == tok.decode(out[0], skip_special_tokens=True).strip()
        assert 0 < result.confidence <= 1


def test_caption_confidence_is_mean_token_probability(tiny_models, images) -> None:
    model, _tok, proc = _plain(tiny_models["caption"], BlipForConditionalGeneration)
    blip = vision.load(tiny_models["caption"])
    result = blip.caption(
        images[:1],
        decoding="greedy",
        max_new_tokens=6,
        min_new_tokens=6,
        no_repeat_ngram_size=0,
        no_repeat_words=False,
    )[0]
    inputs = proc(images=images[0], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=6, min_new_tokens=6, output_logits=True, return_dict_in_generate=True
        )
    # the chosen token's probability under the raw (unprocessed) logits, per step
    logps = [F.log_softmax(s[0], -1)[t] for s, t in zip(out.logits, out.sequences[0, 1:], strict=False)]
    ended = [t.item() == model.config.text_config.sep_token_id for t in out.sequences[0, 1:]]
    n = ended.index(True) + 1 if True in ended else len(logps)
    expected = torch.exp(torch.stack(logps[:n]).mean()).item()
    assert result.confidence == pytest.approx(expected, rel=1e-4)


def test_vqa_answers_equal_transformers(tiny_models, images) -> None:
    model, tok, proc = _plain(tiny_models["vqa"], BlipForQuestionAnswering)
    blip = vision.load(tiny_models["vqa"])
    question = "what color is the dog?"
    results = blip.ask(images, question)
    for image, result in zip(images, results, strict=True):
        inputs = proc(images=image, return_tensors="pt")
        inputs.update(_text(tok, question))
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=10, num_beams=3, min_new_tokens=1)
        assert result.answer == tok.decode(out[0], skip_special_tokens=True).strip()


def test_itm_and_itc_equal_transformers(tiny_models, images) -> None:
    model, tok, proc = _plain(tiny_models["itm"], BlipForImageTextRetrieval)
    blip = vision.load(tiny_models["itm"])
    texts = ["a dog on the grass", "two people"]
    results = blip.match(images[:1], texts)
    image_vec = blip.embed_images(images[:1])
    text_vecs = blip.embed_texts(texts)
    for text, result, text_vec in zip(texts, results, text_vecs, strict=True):
        inputs = proc(images=images[0], return_tensors="pt")
        inputs.update(_text(tok, text))
        with torch.no_grad():
            itm = model(**inputs, use_itm_head=True).itm_score
            itc = model(**inputs, use_itm_head=False).itm_score
        assert result.score == pytest.approx(torch.softmax(itm, -1)[0, 1].item(), abs=1e-5)
        assert float(image_vec[0] @ text_vec) == pytest.approx(itc[0, 0].item(), abs=1e-5)


def test_rank_answers_scores_sum_to_one_and_pick_best(tiny_models, images) -> None:
    blip = vision.load(tiny_models["vqa"])
    result = blip.ask(images[:1], "what is it?", choices=["dog", "cat", "red car"])[0]
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.answer == max(result.scores, key=result.scores.get)
    # a repeated candidate is one candidate: same scores, still summing to 1
    again = blip.ask(images[:1], "what is it?", choices=["dog", "cat", "dog", "red car", "cat"])[0]
    assert list(again.scores) == ["dog", "cat", "red car"]
    assert again.scores == pytest.approx(result.scores, abs=1e-5)


def test_rank_answers_scores_only_the_top_k_first_tokens_in_full(tiny_models, images) -> None:
    from assistant.vision.tasks.ask import rank_answers

    blip = vision.load(tiny_models["vqa"])
    embeds = blip.encode_images(images[:2]).embeds
    questions = ["what is it?", "how many?"]
    cands = ["dog", "cat", "red car", "two", "blue", "a small house", "tree", "yes", "no", "three dogs"]
    exact = rank_answers(blip.checkpoint, embeds, questions, cands, k=len(cands))
    pruned = rank_answers(blip.checkpoint, embeds, questions, cands, k=3)
    for full, cut in zip(exact, pruned, strict=True):
        kept = [c for c in cands if cut[c] > 0]
        assert len(kept) == 3
        assert sum(cut.values()) == pytest.approx(1.0, abs=1e-5)
        # the kept candidates' full scores are the exact ones, renormalised over the kept
        mass = sum(full[c] for c in kept)
        for c in kept:
            assert cut[c] == pytest.approx(full[c] / mass, rel=1e-4)
    assert exact == rank_answers(blip.checkpoint, embeds, questions, cands)  # default k covers 10
    with pytest.raises(ValueError, match="k must be"):
        rank_answers(blip.checkpoint, embeds, questions, cands, k=0)

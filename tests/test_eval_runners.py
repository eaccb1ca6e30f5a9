"""Evaluation runners on a tiny random model and generated images: sane numbers, one row per item."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import vision
from assistant.datasets import CaptionRecord, VQARecord, load_caption_dataset, load_vqa_dataset
from assistant.evaluation.runners import (
    answer_vocabulary,
    caption_eval,
    evaluate_captions,
    evaluate_retrieval,
    evaluate_vqa,
    flat_numbers,
    retrieval_eval,
    vqa_eval,
)
from assistant.training.toy_data import make_caption_dataset, make_vqa_dataset
from assistant.vision.errors import DataError, UnsupportedModelError
from assistant.vision.tasks.generation import GenerationSettings

FAST = GenerationSettings(decoding="greedy", max_new_tokens=6, min_new_tokens=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runners")


@pytest.fixture(scope="module")
def blip(tiny_models: dict[str, Path]) -> vision.Blip:
    return vision.load(tiny_models["builtin"])


@pytest.fixture(scope="module")
def captions(root: Path) -> list[CaptionRecord]:
    return load_caption_dataset(make_caption_dataset(root / "captions", 6))


@pytest.fixture(scope="module")
def questions(root: Path) -> list[VQARecord]:
    return load_vqa_dataset(make_vqa_dataset(root / "vqa", 4))


def test_caption_eval_scores_every_image(blip: vision.Blip, captions: list[CaptionRecord]) -> None:
    run = caption_eval(blip, captions, settings=FAST, meteor=False, tokenizer="python")
    assert run.metrics["n_images"] == len(captions) and run.metrics["n_failed"] == 0
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert 0 <= run.metrics[name] <= 1000
    assert run.metrics["METEOR"] is None
    assert [row["image_id"] for row in run.predictions] == [r.image_id for r in captions]
    assert all(isinstance(row["caption"], str) and row["references"] for row in run.predictions)


def test_caption_eval_reports_a_broken_image(
    blip: vision.Blip, captions: list[CaptionRecord], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    records = [*captions[:2], CaptionRecord(str(broken), ["a red ball"], "bad")]
    run = caption_eval(blip, records, settings=FAST, meteor=False, tokenizer="python")
    assert run.metrics["n_failed"] == 1 and run.metrics["n_images"] == 2
    assert run.predictions[2]["error_code"] == "image_decode_error"
    assert (
        evaluate_captions(blip, captions[:2], settings=FAST, meteor=False, tokenizer="python")["n_images"]
        == 2
    )


def test_vqa_eval_generates_and_ranks(blip: vision.Blip, questions: list[VQARecord]) -> None:
    generated = vqa_eval(blip, questions)
    assert generated.metrics["n_questions"] == len(questions)
    assert 0 <= generated.metrics["accuracy"] <= 100
    assert generated.metrics["mode"] == "generate"
    assert len(generated.predictions) == len(questions)
    vocabulary = answer_vocabulary(questions)
    assert set(vocabulary) == {q.answer for q in questions}
    ranked = vqa_eval(blip, questions, choices=vocabulary)
    assert ranked.metrics["mode"] == f"rank over {len(vocabulary)} answers"
    assert all(row["answer"] in vocabulary for row in ranked.predictions)
    # the per-question accuracies average to the reported accuracy
    mean = 100 * sum(row["accuracy"] for row in ranked.predictions) / len(questions)
    assert ranked.metrics["accuracy"] == pytest.approx(mean)


def test_vqa_reads_underscores_as_spaces(blip: vision.Blip, questions: list[VQARecord]) -> None:
    record = questions[0]
    daquar = [VQARecord(record.image, "what is it ?", ["garbage_bin"], "garbage_bin", "q1", "1")]
    # one candidate: the model must answer it, written with a space, and that counts as right
    assert evaluate_vqa(blip, daquar, choices=["garbage bin"])["accuracy"] == 100.0
    assert evaluate_vqa(blip, daquar, choices=["garbage_bin"])["accuracy"] == 100.0


def test_retrieval_eval_itc_and_itm(blip: vision.Blip, captions: list[CaptionRecord]) -> None:
    run = retrieval_eval(blip, captions, rerank_k=3)
    m = run.metrics
    n_texts = sum(len(r.captions) for r in captions)
    assert (m["n_images"], m["n_texts"], m["rerank_k"]) == (len(captions), n_texts, 3)
    for part in ("itc", "itm", "itc+itm"):
        for key in ("i2t_R@1", "i2t_R@5", "t2i_R@1", "t2i_R@10"):
            assert 0 <= m[part][key] <= 100
        assert m[part]["i2t_R@1"] <= m[part]["i2t_R@5"] <= m[part]["i2t_R@10"]
        assert 1 <= m[part]["t2i_medr"] <= len(captions)
    assert m["r1_mean"] == (m["itm"]["i2t_R@1"] + m["itm"]["t2i_R@1"]) / 2
    directions = [row["direction"] for row in run.predictions]
    assert directions.count("i2t") == len(captions) and directions.count("t2i") == n_texts
    # re-ranking only reorders the top-k: a correct item left outside the ITC top-k keeps its ITC rank
    for row in run.predictions:
        if row["itm_rank"] > 3:
            assert row["itm_rank"] == row["itc_rank"]
    itc_only = evaluate_retrieval(blip, captions, rerank_k=0)
    assert (
        "itm" not in itc_only
        and itc_only["r1_mean"] == (itc_only["itc"]["i2t_R@1"] + itc_only["itc"]["t2i_R@1"]) / 2
    )
    assert itc_only["itc"] == m["itc"]
    assert "itm.i2t_R@1" in flat_numbers(m)


def test_runners_check_the_heads(tiny_models: dict[str, Path], captions: list[CaptionRecord]) -> None:
    captioner = vision.load(tiny_models["caption"])
    with pytest.raises(UnsupportedModelError):
        retrieval_eval(captioner, captions)
    with pytest.raises(DataError):
        caption_eval(captioner, [])

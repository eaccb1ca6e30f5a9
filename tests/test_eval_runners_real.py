"""Evaluation, fine-tuning and CapFilt on slices of the real Flickr8k and DAQUAR data (slow).

A tiny random model stands in for a trained one: these tests check that real files, real photos and
DAQUAR's answers flow through every step, not the scores. With the built-in model installed, the last
test reports its real numbers on small slices.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant import vision
from assistant.datasets import load_caption_dataset, load_vqa_dataset
from assistant.evaluation.runners import (
    answer_vocabulary,
    caption_eval,
    evaluate_captions,
    evaluate_retrieval,
    evaluate_vqa,
    retrieval_eval,
    vqa_eval,
)
from assistant.training.finetune import FinetuneConfig, finetune
from assistant.vision.errors import VisionError
from assistant.vision.tasks.generation import GenerationSettings

DATA_DIR = Path(
    os.environ.get("BLIP_ASSISTANT_DATA_DIR") or Path(__file__).parents[1].parent / "shared" / "data")
FLICKR = DATA_DIR / "flickr8k" / "dataset_flickr8k.json"
DAQUAR = DATA_DIR / "daquar"

pytestmark = pytest.mark.slow


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"real data not found at {path} "
            "(set BLIP_ASSISTANT_DATA_DIR to the folder holding flickr8k/, daquar/)"
        )


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["builtin"]


def test_flickr8k_caption_and_retrieval(tiny: Path) -> None:
    need(FLICKR)
    blip = vision.load(tiny)
    records = load_caption_dataset(FLICKR, split="test")[:12]
    run = caption_eval(blip, records, settings=GenerationSettings(max_new_tokens=8), meteor=False)
    assert run.metrics["n_images"] == 12 and run.metrics["CIDEr"] >= 0
    retrieval = retrieval_eval(blip, records, rerank_k=4)
    assert retrieval.metrics["n_texts"] == 60 and 0 <= retrieval.metrics["r1_mean"] <= 100


def test_daquar_rank_and_generate(tiny: Path) -> None:
    need(DAQUAR)
    blip = vision.load(tiny)
    test = load_vqa_dataset(DAQUAR, split="test", check_images=False)[:10]
    vocabulary = answer_vocabulary(load_vqa_dataset(DAQUAR, split="train", check_images=False), 40)
    assert all("_" not in answer for answer in vocabulary)  # garbage_bin -> garbage bin
    ranked = vqa_eval(blip, test, choices=vocabulary)
    assert ranked.metrics["n_questions"] == 10 and all(r["answer"] in vocabulary for r in ranked.predictions)
    assert 0 <= vqa_eval(blip, test).metrics["accuracy"] <= 100


def test_finetune_on_flickr8k(tiny: Path, tmp_path: Path) -> None:
    need(FLICKR)
    result = finetune(
        FinetuneConfig(
            task="retrieval",
            data=str(FLICKR),
            val_split="val",
            output=str(tmp_path),
            model=str(tiny),
            max_steps=2,
            batch_size=8,
            save_steps=2,
            eval_limit=8,
            eval_rerank_k=4,
            progress=False,
        )
    )
    assert result.global_step == 2 and result.metric == "r1_mean"
    assert vision.load(tmp_path).tasks == {"caption", "vqa", "itm", "itc"}


def test_builtin_model_on_real_slices() -> None:
    need(FLICKR)
    need(DAQUAR)
    try:
        blip = vision.load("builtin")
    except VisionError as exc:
        pytest.skip(f"the built-in model is not installed: {exc}")
    flickr = load_caption_dataset(FLICKR, split="test")[:50]
    captions = evaluate_captions(blip, flickr, meteor=False)
    retrieval = evaluate_retrieval(blip, flickr)
    vqa = evaluate_vqa(blip, load_vqa_dataset(DAQUAR, split="test")[:100])
    print(f"CIDEr {captions['CIDEr']:.1f}, R@1 {retrieval['r1_mean']:.1f}, DAQUAR {vqa['accuracy']:.1f}")
    assert captions["CIDEr"] > 0 and retrieval["itm"]["t2i_R@10"] > 10

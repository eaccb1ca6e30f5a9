"""The loaders and metrics on the real Flickr8k and DAQUAR files in ../shared/data (slow)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from assistant.datasets import load_caption_dataset, load_vqa_dataset, save_caption_dataset
from assistant.evaluation import caption_scores, vqa_scores

DATA_DIR = Path(
    os.environ.get("BLIP_ASSISTANT_DATA_DIR") or Path(__file__).parents[1].parent / "shared" / "data")
FLICKR = DATA_DIR / "flickr8k" / "dataset_flickr8k.json"
DAQUAR = DATA_DIR / "daquar"

pytestmark = pytest.mark.slow


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"real data not found at {path} "
            "(set BLIP_ASSISTANT_DATA_DIR to the folder holding flickr8k/ and daquar/)"
        )


@pytest.mark.parametrize(("split", "n_images"), [("train", 6000), ("val", 1000), ("test", 1000)])
def test_flickr8k_splits(split: str, n_images: int) -> None:
    need(FLICKR)
    records = load_caption_dataset(FLICKR, split=split)  # validates every image too
    assert len(records) == n_images
    assert {len(r.captions) for r in records} == {5}
    assert {r.split for r in records} == {split}
    assert all(Path(r.image).is_file() for r in records[:20])


def test_flickr8k_human_captions_score_like_humans(tmp_path: Path) -> None:
    need(FLICKR)
    records = load_caption_dataset(FLICKR, split="test", check_images=False)
    # each image's first caption scored against the other four: the usual "human" baseline
    predictions = {r.image_id: r.captions[0] for r in records}
    references = {r.image_id: r.captions[1:] for r in records}
    scores = caption_scores(predictions, references, meteor=False)
    assert scores["n_images"] == 1000
    assert 40 < scores["BLEU-1"] < 90 and 5 < scores["BLEU-4"] < 40
    assert 20 < scores["CIDEr"] < 150
    # and saving the split back in Karpathy form loses nothing
    out = save_caption_dataset(records, tmp_path / "flickr_test.json", like=FLICKR)
    assert load_caption_dataset(out, check_images=False) == records


@pytest.mark.parametrize(("split", "n_questions"), [("train", 6795), ("test", 5673)])
def test_daquar_splits(split: str, n_questions: int) -> None:
    need(DAQUAR)
    records = load_vqa_dataset(DAQUAR, split=split)
    assert len(records) == n_questions
    assert all(r.answers and r.answer for r in records)
    assert {Path(r.image).name for r in records[:3]} <= {f"image{r.image_id}.jpg" for r in records}
    list_answers = [r for r in records if "," in r.answer]
    assert list_answers and all(len(r.answers) > 1 for r in list_answers)
    scores = vqa_scores({r.question_id: r.answer for r in records}, records, wups_thresholds=())
    assert scores["accuracy"] == 100.0 and scores["n_questions"] == n_questions
    most_common = Counter(r.answer for r in records).most_common(1)[0][0]
    baseline = vqa_scores({r.question_id: most_common for r in records}, records, wups_thresholds=())
    assert 0 < baseline["accuracy"] < 15  # answering the commonest word is a weak baseline

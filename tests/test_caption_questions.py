"""Questions derived from human captions (assistant.datasets.caption_questions), and the benchmark built on
them (tests/benchmarks/vqa_questions.py) on Flickr8k's test images."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from assistant.datasets.caption_questions import (
    OBJECT_KINDS,
    activity_questions,
    build,
    colour_questions,
    count_questions,
    place_questions,
    presence_questions,
)
from assistant.datasets.records import CaptionRecord
from conftest import DATA_DIR

FLICKR = DATA_DIR / "flickr8k" / "dataset_flickr8k.json"
BEACH = ["A black dog runs on the beach .", "Two dogs are running on the beach near the ocean .",
         "A black dog is running along the sand on a beach .", "Two dogs run by the water .",
         "A dog is running on the beach in a red collar ."]


def _words(captions: list[str]) -> list[list[str]]:
    from assistant.datasets.caption_questions import _words as words

    return [words(c) for c in captions]


def test_presence_is_balanced_and_negatives_name_nothing_of_their_kind() -> None:
    rng = random.Random(0)
    for _ in range(50):
        pairs = presence_questions(_words(BEACH), rng)
        assert [a for _, a in pairs] == ["yes", "no"]
        assert "dog" in pairs[0][0] or "water" in pairs[0][0] or "sand" in pairs[0][0]
        negative = pairs[1][0]
        # nothing the captions say belongs to the kind asked about: no "is there water?" on this beach
        asked_kind = next(k for k, words in OBJECT_KINDS.items() if f" {k} " in negative or
                          negative.endswith(f" {k} in the picture?"))
        mentioned = {w for c in _words(BEACH) for w in c}
        assert not mentioned & set(OBJECT_KINDS[asked_kind]), negative


def test_colour_count_activity_place_need_agreeing_captions() -> None:
    assert count_questions(_words(BEACH)) == [("how many dogs are there?", "2")]
    assert place_questions(_words(BEACH)) == [("where is this?", "beach")]
    assert activity_questions(_words(BEACH)) == [("what is the dog doing?", "running")]
    # "black dog" twice: asked; one caption's colour alone would not be
    assert colour_questions(_words(BEACH)) == [("what color is the dog?", "black")]
    assert colour_questions(_words(BEACH[1:3])) == []
    shirts = ["A man in a blue shirt .", "A man wearing a blue shirt smiles .", "Man , blue shirt ."]
    assert colour_questions(_words(shirts)) == [("what color is the shirt?", "blue")]
    clash = [*shirts, "A man in a green shirt ."]
    assert colour_questions(_words(clash)) == []  # captions disagree: not asked
    mixed = ["A black and white dog .", "A white dog runs .", "The white dog jumps ."]
    assert colour_questions(_words(mixed)) == []  # "black and white" is not "white"
    assert count_questions(_words(["Two men .", "Three men talk ."])) == []


def test_one_thing_is_counted_only_where_no_caption_speaks_of_more() -> None:
    one_dog = ["A black dog runs on the grass .", "A dog is running .", "The dog runs in a park .",
               "A wet dog runs ."]
    assert count_questions(_words(one_dog)) == [("how many dogs are there?", "1")]
    # BEACH says "a black dog" three times, but also "two dogs": never "1"
    assert ("how many dogs are there?", "1") not in count_questions(_words(BEACH))
    for more in ("Puppies play .", "A dog chases another dog .", "A group of dogs .", "Dogs play ."):
        assert count_questions(_words([*one_dog, more])) == [], more
    # "a dog" twice is not enough to say there is only one
    assert count_questions(_words(one_dog[:2])) == []
    # people: "a man" three times and "a couple" elsewhere is not one man
    man = ["A man rides a bike .", "A man in a red shirt .", "A man cycles up a hill ."]
    assert count_questions(_words(man)) == [("how many men are there?", "1")]
    assert count_questions(_words([*man, "A couple rides bikes ."])) == []
    assert count_questions(_words([*man, "Two people on a road ."])) == []


def test_build_is_reproducible() -> None:
    records = [CaptionRecord(image=f"/x/{i}.jpg", captions=BEACH, image_id=str(i), split="test")
               for i in range(20)]
    first, again = build(records, seed=3), build(records, seed=3)
    assert first == again and {q.split for q in first} == {"test"}
    assert Counter(q.kind for q in first)["presence"] == 40


@pytest.mark.slow
def test_the_flickr8k_test_question_set() -> None:
    if not FLICKR.exists():
        pytest.skip(f"no Flickr8k at {FLICKR}")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    from vqa_questions import questions

    qs = questions("test")
    kinds = Counter(q.kind for q in qs)
    assert kinds["presence"] >= 1500 and kinds["colour"] >= 100 and kinds["count"] >= 100, kinds
    answers = Counter(q.answer for q in qs if q.kind == "presence")
    assert answers["yes"] == answers["no"]  # balanced negatives
    assert {q.split for q in qs} == {"test"}
    images = {Path(q.image).name for q in qs}
    import json

    test_images = {im["filename"] for im in json.loads(FLICKR.read_text())["images"] if im["split"] == "test"}
    assert images <= test_images  # never a training image

"""VQA accuracy (official VQAv2 rules, DAQUAR exact/set match) and WUPS."""

from __future__ import annotations

import pytest

from assistant.datasets import VQARecord
from assistant.evaluation.vqa_metrics import (
    normalize_answer,
    split_list_answer,
    vqa_accuracy,
    vqa_scores,
    wordnet_status,
    wups,
    wups_from_similarity,
)
from assistant.vision.errors import DataError

HAVE_WORDNET = wordnet_status()[0] is not None


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("the dog", "dog"),
        ("A Red Car.", "red car"),
        ("dont know", "don't know"),
        ("yes.", "yes"),
        ("2.5", "2.5"),
        ("hello, world", "hello world"),  # ", " present: the mark is deleted
        ("left/right", "left right"),  # no space next to it: the mark becomes a space
        ("1,000", "1000"),  # a comma inside a number deletes every mark
        ("a (big) dog", "big dog"),
        ("garbage_bin", "garbage bin"),
        ("  two\tdogs\n", "2 dogs"),
    ],
)
def test_official_normalisation(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


@pytest.mark.parametrize(
    ("matching", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]
)
def test_official_accuracy_leave_one_out(matching: int, expected: float) -> None:
    # k humans agree: leaving one of them out gives min(1, (k-1)/3), leaving another out min(1, k/3)
    answers = ["blue"] * matching + [
        "green",
        "red",
        "teal",
        "navy",
        "cyan",
        "sky",
        "aqua",
        "azure",
        "royal",
        "indigo",
    ][: 10 - matching]
    assert vqa_accuracy("blue", answers) == pytest.approx(expected)


def test_official_accuracy_normalises_the_prediction() -> None:
    assert vqa_accuracy("Two.", ["2"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("two", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)


def test_few_answers_exact_match_any() -> None:
    assert vqa_accuracy("The chair.", ["chair"]) == 1.0
    assert vqa_accuracy("stool", ["chair", "stool"]) == 1.0
    assert vqa_accuracy("table", ["chair", "stool"]) == 0.0
    assert vqa_accuracy("lamp", [], answer="lamp") == 1.0  # only the single reference answer
    with pytest.raises(DataError, match="without reference answers"):
        vqa_accuracy("lamp", [])


def test_daquar_list_answers_compare_as_sets() -> None:
    items, whole = ["paper", "book"], "paper, book"
    assert vqa_accuracy("book, paper", items, answer=whole) == 1.0
    assert vqa_accuracy("paper,book", items, answer=whole) == 1.0
    assert vqa_accuracy("book", items, answer=whole) == 0.0  # half a list is wrong
    assert vqa_accuracy("paper, book, pen", items, answer=whole) == 0.0


def test_split_list_answer_keeps_numbers_whole() -> None:
    assert split_list_answer("paper, book,pen") == ["paper", "book", "pen"]
    assert split_list_answer("1,000") == ["1,000"]
    assert split_list_answer("2, 3") == ["2", "3"]
    assert split_list_answer("chair") == ["chair"]


def test_wups_set_formula_with_a_hand_made_similarity() -> None:
    table = {("armchair", "chair"): 0.9, ("table", "chair"): 0.5, ("table", "desk"): 0.8}

    def similarity(a: str, b: str) -> float:
        return 1.0 if a == b else table.get((a, b), table.get((b, a), 0.0))

    assert wups_from_similarity(["chair"], ["chair"], similarity) == 1.0
    assert wups_from_similarity(["armchair"], ["chair"], similarity) == pytest.approx(0.9)
    # every predicted item must be near a true one, and every true item near a predicted one
    assert wups_from_similarity(["chair", "table"], ["chair"], similarity) == pytest.approx(0.5)
    assert wups_from_similarity(["armchair", "table"], ["chair", "desk"], similarity) == pytest.approx(
        0.9 * 0.8
    )
    assert wups_from_similarity([], [], similarity) == 1.0
    assert wups_from_similarity(["chair"], [], similarity) == 0.0


@pytest.mark.skipif(HAVE_WORDNET, reason="WordNet data is installed here")
def test_wups_without_wordnet_data_is_none_with_a_reason() -> None:
    assert wups("chair", "chair") is None
    model, why = wordnet_status()
    assert model is None and "WUPS not computed" in why


@pytest.mark.skipif(not HAVE_WORDNET, reason="nltk's WordNet data is not installed (never downloaded)")
def test_wups_with_wordnet() -> None:
    assert wups("chair", "chair") == 1.0
    assert wups("armchair", "chair", threshold=0.0) > 0.8
    assert wups("dog", "sofa", threshold=0.9) < 0.1  # unrelated words count a tenth
    assert wups("garbage_bin, chair", "chair, garbage bin") == 1.0


def daquar_records() -> list[VQARecord]:
    return [
        VQARecord("/x/image1.jpg", "what is it ?", ["chair"], "chair", "1", "1", "test"),
        VQARecord("/x/image1.jpg", "what is on it ?", ["paper", "book"], "paper, book", "2", "1", "test"),
        VQARecord("/x/image2.jpg", "how many ?", ["2"], "2", "3", "2", "test"),
        VQARecord("/x/image2.jpg", "unanswered ?", [], "", "4", "2", "test"),
    ]


def test_vqa_scores_over_a_dataset() -> None:
    predictions = {"1": "chair", "2": "book", "3": "two", "4": "anything"}
    scores = vqa_scores(predictions, daquar_records())
    assert scores["accuracy"] == pytest.approx(100 * 2 / 3)
    assert scores["n_questions"] == 3
    assert scores["n_without_answers"] == 1
    assert any("no reference answers" in note for note in scores["notes"])
    if HAVE_WORDNET:
        assert scores["WUPS@0.9"] is not None
    else:
        assert scores["WUPS@0.9"] is None and scores["WUPS@0.0"] is None
        assert any("WUPS not computed" in note for note in scores["notes"])


def test_vqa_scores_rejects_unknown_question_ids() -> None:
    with pytest.raises(DataError, match="unknown question ids"):
        vqa_scores({"99": "chair"}, daquar_records())


def test_vqa_scores_with_integer_prediction_keys() -> None:
    assert vqa_scores({1: "chair"}, daquar_records(), wups_thresholds=())["accuracy"] == 100.0

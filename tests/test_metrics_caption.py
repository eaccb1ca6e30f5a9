"""Caption metrics from pycocoevalcap, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from assistant.evaluation.caption_metrics import (
    caption_scores,
    java_path,
    ptb_tokenize,
    simple_ptb_tokenize,
)
from assistant.vision.errors import DataError

needs_java = pytest.mark.skipif(java_path() is None, reason="java is not on PATH")


def test_exact_match_scores_100() -> None:
    caption = "a brown dog runs across the green grass"
    scores = caption_scores({"img": caption}, {"img": [caption]}, meteor=False)
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        assert scores[name] == pytest.approx(100.0, abs=1e-4), name
    assert scores["n_images"] == 1
    assert scores["METEOR"] is None


def test_bleu_and_rouge_hand_worked() -> None:
    # hypothesis: the cat sat on the mat / reference: the cat is on the mat (both 6 words, no brevity penalty)
    # unigrams 5/6 match (the x2 clipped to 2, cat, on, mat); bigrams 3/5 (the cat, on the, the mat);
    # trigrams 1/4 (on the mat); 4-grams 0/3. ROUGE-L: LCS "the cat on the mat" = 5 of 6 words.
    scores = caption_scores({1: "The cat sat on the mat."}, {1: ["the cat is on the mat"]}, meteor=False)
    assert scores["BLEU-1"] == pytest.approx(100 * 5 / 6, abs=1e-4)
    assert scores["BLEU-2"] == pytest.approx(100 * math.sqrt(5 / 6 * 3 / 5), abs=1e-4)
    assert scores["BLEU-3"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3), abs=1e-4)
    assert scores["BLEU-4"] < 0.01  # no matching 4-gram; only the toolkit's tiny smoothing is left
    assert scores["ROUGE-L"] == pytest.approx(100 * 5 / 6, abs=1e-4)


def test_bleu_brevity_penalty() -> None:
    # 2 words against a 6-word reference: every n-gram matches, BP = exp(1 - 6/2)
    scores = caption_scores({1: "the cat"}, {1: ["the cat sat on the mat"]}, meteor=False)
    assert scores["BLEU-1"] == pytest.approx(100 * math.exp(-2), rel=1e-6)
    assert scores["BLEU-2"] == pytest.approx(100 * math.exp(-2), rel=1e-6)


def test_cider_of_identical_corpus_by_hand() -> None:
    # Two images; "a" is in both documents so its idf = log(2/2) = 0, while "b", "c", "a b", "a c" each have
    # idf log 2. Each prediction's unigram and bigram tf-idf vectors equal its reference's (cosine 1); there
    # are no 3- or 4-grams (cosine 0). CIDEr = 10 * mean(1, 1, 0, 0) = 5, i.e. 500 on the x100 scale.
    scores = caption_scores({"x": "a b", "y": "a c"}, {"x": ["a b"], "y": ["a c"]}, meteor=False)
    assert scores["CIDEr"] == pytest.approx(500.0, abs=1e-6)


def test_cider_of_identical_corpus_with_all_ngram_orders() -> None:
    # No word is shared, so every n-gram of every order has idf log 3 and cosine 1: CIDEr = 10 -> 1000.
    captions = {"1": "red car on road", "2": "blue sky over sea", "3": "green tree in park"}
    scores = caption_scores(captions, {k: [v] for k, v in captions.items()}, meteor=False)
    assert scores["CIDEr"] == pytest.approx(1000.0, abs=1e-6)


def test_cider_of_a_single_image_is_zero() -> None:
    # idf = log(1/1) = 0 for every n-gram: CIDEr needs a corpus, as the docstring says
    assert caption_scores({1: "a b c d"}, {1: ["a b c d"]}, meteor=False)["CIDEr"] == 0.0


def test_extra_references_are_ignored_and_notes_mention_spice() -> None:
    scores = caption_scores({1: "a dog"}, {1: ["a dog"], 2: ["unused"]}, meteor=False)
    assert scores["n_images"] == 1
    assert any("SPICE" in note for note in scores["notes"])


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({}, {1: ["x"]}, "no predictions"),
        ({1: "x", 2: "y"}, {1: ["x"]}, "have no references"),
        ({1: "x"}, {1: []}, "empty reference list"),
        ({1: None}, {1: ["x"]}, "not text"),
    ],
)
def test_bad_inputs(predictions: dict, references: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        caption_scores(predictions, references, meteor=False)


def test_python_tokenizer_rules() -> None:
    assert (
        simple_ptb_tokenize("A dog's ball, isn't it? (Red) -- yes!")
        == "a dog 's ball is n't it -lrb- red -rrb- yes"
    )
    assert (
        simple_ptb_tokenize('He cannot see "the" 1,000 people at 10:30.')
        == "he can not see the 1,000 people at 10:30"
    )
    assert simple_ptb_tokenize("A well-known U.S. cafe ...") == "a well-known u.s. cafe"
    assert simple_ptb_tokenize("") == ""


def test_without_java_python_tokenizer_and_no_meteor(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java anywhere
    assert java_path() is None
    scores = caption_scores({1: "The cat sat on the mat."}, {1: ["the cat is on the mat"]})
    assert scores["tokenizer"] == "python"
    assert scores["METEOR"] is None
    assert any("METEOR missing" in note and "Java" in note for note in scores["notes"])
    assert scores["BLEU-1"] == pytest.approx(100 * 5 / 6, abs=1e-4)
    with pytest.raises(RuntimeError, match="java"):
        caption_scores({1: "x"}, {1: ["x"]}, tokenizer="ptb", meteor=False)


@needs_java
def test_python_tokenizer_matches_java_ptb() -> None:
    sentences = [
        "A child in a pink dress is climbing up a set of stairs in an entry way .",
        "Two dogs ' tails , one dog 's ear and a man 's hat .",
        "A man wearing a white shirt is wearing an at&t headphone at a game .",
        "\"Quoted\" text ... and 'single' quotes ; 50% off $5 !",
        "She's gonna say: I can't, won't and shouldn't (really) [ok] {fine}",
        "",
        "The U.S. flag at 10:30, 1,000 people; 3.5 m tall - really?",
    ]
    assert [simple_ptb_tokenize(s) for s in sentences] == ptb_tokenize(sentences)


@pytest.mark.slow  # the METEOR jar loads its paraphrase table: about ten seconds on one core
@needs_java
def test_meteor_with_java() -> None:
    scores = caption_scores(
        {1: "a dog runs on the grass", 2: "a cat sleeps"},
        {1: ["a dog runs on the grass"], 2: ["a man rides a red bike"]},
        tokenizer="ptb",
    )
    assert scores["tokenizer"] == "ptb"
    assert not any("METEOR" in note for note in scores["notes"])
    # METEOR pools its statistics over the corpus: one exact and one unrelated pair lie well between
    assert 10.0 < scores["METEOR"] < 90.0
    exact = caption_scores({1: "a dog runs on the grass"}, {1: ["a dog runs on the grass"]})
    assert exact["METEOR"] == pytest.approx(100.0)  # METEOR 1.5 gives one whole chunk no penalty

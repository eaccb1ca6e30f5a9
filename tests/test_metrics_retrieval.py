"""Retrieval metrics on hand-made similarity matrices whose ranks are known."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.evaluation import retrieval_metrics
from assistant.evaluation.retrieval_metrics import image_to_text_ranks, retrieval_scores, text_to_image_ranks
from assistant.vision.errors import DataError

# Two images, two texts each. Image 1's best correct text (0.6) trails a wrong one (0.7); texts 1 and 2
# each have a wrong image ahead of theirs.
SIM = np.array(
    [
        [0.9, 0.1, 0.8, 0.2],
        [0.7, 0.4, 0.5, 0.6],
    ]
)
GT = [0, 0, 1, 1]


def test_hand_made_matrix_ranks() -> None:
    assert image_to_text_ranks(SIM, GT).tolist() == [1, 2]
    assert text_to_image_ranks(SIM, GT).tolist() == [1, 2, 2, 1]


def test_hand_made_matrix_scores() -> None:
    scores = retrieval_scores(SIM, GT)
    assert scores["i2t_R@1"] == 50.0 and scores["i2t_R@5"] == 100.0 and scores["i2t_R@10"] == 100.0
    assert scores["t2i_R@1"] == 50.0 and scores["t2i_R@5"] == 100.0
    assert scores["i2t_medr"] == 1.5 and scores["i2t_meanr"] == 1.5
    assert scores["t2i_medr"] == 1.5 and scores["t2i_meanr"] == 1.5
    assert scores["r_mean"] == pytest.approx((50 + 100 + 100) * 2 / 6)
    assert (scores["n_images"], scores["n_texts"]) == (2, 4)


def test_perfect_and_reversed_matrices() -> None:
    gt = np.repeat(np.arange(4), 5)  # 4 images x 5 texts, like Flickr
    perfect = (gt[None, :] == np.arange(4)[:, None]).astype(float)
    scores = retrieval_scores(perfect, gt)
    assert scores["i2t_R@1"] == scores["t2i_R@1"] == 100.0
    assert scores["i2t_medr"] == scores["t2i_medr"] == 1.0
    worst = retrieval_scores(-perfect, gt)  # every wrong candidate ahead of the right one
    assert worst["t2i_R@1"] == 0.0 and worst["t2i_meanr"] == 4.0  # 3 wrong images ahead
    assert worst["i2t_meanr"] == 16.0  # 15 wrong texts ahead
    assert worst["i2t_R@10"] == 0.0


def test_ties_count_against_the_model() -> None:
    scores = retrieval_scores(np.zeros((3, 3)), [0, 1, 2])
    assert scores["i2t_R@1"] == 0.0 and scores["t2i_R@1"] == 0.0
    assert scores["i2t_meanr"] == 3.0 and scores["t2i_meanr"] == 3.0


def brute_force(sim: np.ndarray, gt: np.ndarray) -> tuple[list[int], list[int]]:
    i2t = []
    for image in range(sim.shape[0]):
        order = np.argsort(-sim[image])
        i2t.append(1 + min(int(np.where(order == t)[0][0]) for t in np.where(gt == image)[0]))
    t2i = []
    for text in range(sim.shape[1]):
        order = np.argsort(-sim[:, text])
        t2i.append(1 + int(np.where(order == gt[text])[0][0]))
    return i2t, t2i


def test_matches_argsort_on_a_random_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    gt = np.repeat(np.arange(30), 5)
    sim = rng.normal(size=(30, 150)) + 1.5 * (gt[None, :] == np.arange(30)[:, None])
    i2t, t2i = brute_force(sim, gt)
    assert image_to_text_ranks(sim, gt).tolist() == i2t
    assert text_to_image_ranks(sim, gt).tolist() == t2i
    monkeypatch.setattr(retrieval_metrics, "_CHUNK_ELEMENTS", 200)  # several row blocks
    assert image_to_text_ranks(sim, gt).tolist() == i2t
    assert text_to_image_ranks(sim, gt).tolist() == t2i
    scores = retrieval_scores(sim, gt)
    assert scores["t2i_R@5"] == pytest.approx(100 * np.mean(np.array(t2i) <= 5))


@pytest.mark.parametrize(
    ("sim", "gt", "message"),
    [
        (np.zeros((2, 3)), [0, 1], "one image index per text"),
        (np.zeros((2, 2)), [0, 2], "outside"),
        (np.zeros((2, 2)), [0, 0], "have no text"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), [0, 1], "NaN"),
        (np.zeros(3), [0, 1, 2], "matrix"),
        (np.zeros((2, 2)), [0.0, 1.0], "one image index per text"),
    ],
)
def test_bad_inputs(sim: np.ndarray, gt: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        retrieval_scores(sim, gt)

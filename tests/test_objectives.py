"""The ITM negative sampler: hard negatives by ITC similarity, optionally mixed with uniform ones."""

from __future__ import annotations

import torch

from blipkit.training.objectives import _sample_negatives


def _draws(random_share: float, n: int = 4000) -> torch.Tensor:
    torch.manual_seed(0)
    # 4 items; items 0 and 1 show the same image. Row 0 finds item 3 far more similar than item 2.
    sim = torch.tensor([[9.0, 9.0, 0.0, 12.0]]).repeat(n, 1)
    same = torch.tensor([[True, True, False, False]]).repeat(n, 1)
    return _sample_negatives(sim, same, random_share)


def test_hard_negatives_follow_itc_similarity_and_never_the_same_image() -> None:
    picks = _draws(0.0)
    assert set(picks.tolist()) <= {2, 3}
    assert (picks == 3).float().mean() > 0.9  # softmax weight of item 3 is e^12 / (e^12 + 1)


def test_random_share_mixes_in_uniform_negatives() -> None:
    picks = _draws(0.5)
    assert set(picks.tolist()) <= {2, 3}
    share_easy = (picks == 2).float().mean().item()
    assert 0.2 < share_easy < 0.3  # half the draws are uniform over {2, 3}: about a quarter land on 2
    uniform = _draws(1.0)
    assert 0.45 < (uniform == 2).float().mean().item() < 0.55

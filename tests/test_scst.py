"""Self-critical sequence training: the CIDEr-D reward is the COCO toolkit's CIDEr, the policy gradient
raises a reward, and the pre-trainer runs it as a second stage that picks checkpoints by CIDEr."""

from __future__ import annotations

import json

import pytest
import torch

from assistant import vision
from assistant.evaluation.caption_metrics import simple_ptb_tokenize
from assistant.training import objectives as obj
from assistant.training.config import load_config
from assistant.training.pretrain import Pretrainer
from assistant.training.rewards import CiderD
from test_pretrain import _config, tiny_data  # noqa: F401  (the fixture)

REFS = {
    "dog": ["A dog runs on the grass.", "a brown dog running in a field", "The dog is playing outside ."],
    "beach": ["Two people walk along the beach", "a couple on a sandy beach near the sea"],
    "city": ["A busy street in a city at night.", "cars drive down a city street", "a street with lights"],
    "kid": ["A little girl in a pink dress", "a child smiles at the camera", "a girl is smiling"],
}
CANDIDATES = {
    "dog": "a brown dog runs on the grass",
    "beach": "two people on the beach",
    "city": "a dog in a pink dress",
    "kid": "a girl in a pink dress smiles",
}


def test_cider_d_is_the_coco_toolkits_cider_when_the_frequencies_are_the_scored_references() -> None:
    from pycocoevalcap.cider.cider import Cider

    gts = {k: [simple_ptb_tokenize(r) for r in refs] for k, refs in REFS.items()}
    res = {k: [simple_ptb_tokenize(c)] for k, c in CANDIDATES.items()}
    mean, per_image = Cider().compute_score(gts, res)
    ours = CiderD(REFS).scores(list(CANDIDATES.values()), list(CANDIDATES))
    assert ours == pytest.approx(list(per_image), rel=1e-9)
    assert sum(ours) / len(ours) == pytest.approx(mean, rel=1e-9)
    assert ours[2] < ours[0]  # the caption of the wrong picture scores low


def test_cider_d_frequencies_are_fixed_at_init() -> None:
    cider = CiderD(REFS)
    alone = cider.score("a brown dog runs on the grass", "dog")
    assert cider.scores(["a brown dog runs on the grass", "x"], ["dog", "city"])[0] == alone
    with pytest.raises(ValueError, match="at least one document"):
        CiderD({})


def test_scst_raises_the_reward(tiny_models) -> None:
    torch.manual_seed(0)
    ckpt = vision.load(tiny_models["builtin"], fast=False).checkpoint
    model = ckpt.model.train()
    embeds = torch.randn(8, 5, model.config.text_config.encoder_hidden_size) * 0.5

    def early_letters(texts: list[str], owners: list[int]) -> list[float]:
        """The share of words that start with a-g: about 0.45 for the random model."""
        assert owners == [i // 4 for i in range(32)]
        return [sum(w[0] < "h" for w in t.split()) / max(1, len(t.split())) for t in texts]

    def decode(seqs: torch.Tensor) -> list[str]:
        return ckpt.tokenizer.batch_decode(seqs, skip_special_tokens=True)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rewards = []
    for _ in range(20):
        loss, reward = obj.scst_loss(model, embeds, early_letters, decode, samples=4, max_new_tokens=6)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rewards.append(reward.item())
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.25
    with pytest.raises(ValueError, match="at least 2 samples"):
        obj.scst_loss(model, embeds, early_letters, decode, samples=1, max_new_tokens=6)


def test_pretrainer_runs_scst_and_picks_checkpoints_by_cider(tmp_path, tiny_data, tiny_models) -> None:  # noqa: F811
    cfg = load_config(
        _config(tmp_path, tiny_data, tiny_models["builtin"], 6),
        {"train.loss_scst": 1.0, "train.scst_images": 2, "train.scst_samples": 3, "train.scst_max_tokens": 5},
    )
    trainer = Pretrainer(cfg)
    trainer.run(resume=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    steps = [h for h in history if "reward" in h]
    vals = [h for h in history if "val_cider" in h]
    assert len(steps) == 6 and all(0 <= h["reward"] <= 10 for h in steps)
    assert len(vals) == 2 and all(h["val_cider"] >= 0 for h in vals)
    assert trainer._score(vals[0]) == pytest.approx(
        -0.01 * vals[0]["val_cider"] - 0.01 * (vals[0]["val_r1_t2i"] + vals[0]["val_r1_i2t"]) / 2
    )
    assert (tmp_path / "run" / "best" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="scst_samples"):
        load_config(_config(tmp_path, tiny_data, tiny_models["builtin"], 6),
                    {"train.loss_scst": 1.0, "train.scst_samples": 1})

"""Moderation: policy validation, the category score, threshold calibration, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from blipkit.errors import DataError, PolicyError
from blipkit.tasks import tags as tags_task
from blipkit.tasks.moderation import Policy, calibrate, category_scores, moderate_features, pick_threshold
from test_index_helpers import blip, cli_app, make_images, tiny_builtin  # noqa: F401

POLICY = {
    "categories": [
        {"name": "animal", "positive": ["a photo of a dog", "a photo of a cat"],
         "negative": ["a photo of a street"], "threshold": 0.5},
        {"name": "water", "positive": "a photo of the ocean", "negative": ["a photo of a room", "a photo"]},
    ]
}


def test_policy_validation(tmp_path: Path) -> None:
    policy = Policy.from_dict(POLICY)
    assert [c.name for c in policy.categories] == ["animal", "water"]
    assert policy.categories[1].positive == ["a photo of the ocean"] and policy.categories[1].threshold == 0.5
    bad = [
        {},
        {"categories": []},
        {"categories": [{"name": "x", "positive": ["p"]}]},  # no negatives: nothing to contrast with
        {"categories": [{"name": "x", "positive": ["p"], "negative": ["n"], "threshold": 1.5}]},
        {"categories": [{"name": "x", "positive": ["p"], "negative": ["n"]}] * 2},
        {"method": "magic", "categories": POLICY["categories"]},
    ]
    for data in bad:
        with pytest.raises(PolicyError):
            Policy.from_dict(data)
    path = tmp_path / "p.yaml"
    policy.save(path)
    assert Policy.load(path).to_dict() == policy.to_dict()
    (tmp_path / "broken.yaml").write_text("categories: [unclosed")
    with pytest.raises(PolicyError):
        Policy.load(tmp_path / "broken.yaml")


def test_itc_score_is_the_positive_share_of_a_softmax(blip, tmp_path: Path) -> None:  # noqa: F811
    images = [str(p) for p in make_images(tmp_path, 2)]
    policy = Policy.from_dict(POLICY)
    features = blip.encode_images(images)
    scores = category_scores(blip.checkpoint, features, policy)
    vecs = blip.embed_images(images)
    temp = tags_task.temperature(blip.checkpoint)
    for cat in policy.categories:
        sims = vecs @ blip.embed_texts(cat.prompts).T / temp
        e = np.exp(sims - sims.max(axis=1, keepdims=True))
        expected = e[:, : len(cat.positive)].sum(axis=1) / e.sum(axis=1)
        assert [s[cat.name] for s in scores] == pytest.approx(expected.tolist(), abs=1e-5)


def test_itm_method_and_flags(blip, tmp_path: Path) -> None:  # noqa: F811
    image = str(make_images(tmp_path, 1)[0])
    policy = Policy.from_dict({**POLICY, "method": "itm"})
    features = blip.encode_images([image, str(tmp_path / "missing.png")])
    scores = category_scores(blip.checkpoint, features, policy)
    cat = policy.categories[0]
    p = np.array([r.score for r in blip.match([image], cat.prompts)])
    odds = p / (1 - p)
    assert scores[0]["animal"] == pytest.approx(odds[:2].sum() / odds.sum(), abs=1e-5)
    assert scores[1] == {}
    policy.categories[0].threshold = 0.0
    policy.categories[1].threshold = 1.0
    results = moderate_features(blip.checkpoint, features, policy)
    assert results[0].flagged == ["animal"] and results[0].caption
    assert not results[1].ok


def test_pick_threshold_known_answers() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    labels = [True, True, False, True, False, False]
    picked = pick_threshold(scores, labels, 0.75)  # flag top 4: precision 3/4, recall 1
    assert picked["threshold"] == pytest.approx(0.55) and picked["recall"] == 1.0 and picked["target_met"]
    picked = pick_threshold(scores, labels, 0.9)  # only the top 2 are precise enough
    assert picked["threshold"] == pytest.approx(0.75) and picked["precision"] == 1.0
    assert picked["recall"] == pytest.approx(2 / 3)
    ties = pick_threshold([0.9, 0.5, 0.5, 0.1], [True, True, False, False], 0.9)
    assert ties["threshold"] == pytest.approx(0.7)  # never cut between tied scores
    unreachable = pick_threshold([0.9, 0.8], [False, True], 0.99)
    assert not unreachable["target_met"] and unreachable["precision"] == 0.5
    assert pick_threshold([0.3], [False], 0.9)["threshold"] is None


def test_calibrate_sets_thresholds_and_records_them() -> None:
    policy = Policy.from_dict(POLICY)
    scores = [{"animal": s, "water": 0.1} for s in (0.9, 0.8, 0.2)]
    labels = [{"animal"}, {"animal"}, set()]
    out = calibrate(policy, scores, labels, 0.9)
    animal, water = out.categories
    assert animal.threshold == pytest.approx(0.5) and animal.calibration["precision"] == 1.0
    assert water.threshold == policy.categories[1].threshold and water.calibration["support"] == 0


def test_cli_moderate_and_calibrate(cli_app, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    images = make_images(tmp_path / "img", 4)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(POLICY))
    runner = CliRunner()
    model = ["--model", str(tiny_builtin)]
    result = runner.invoke(cli_app, ["moderate", str(tmp_path / "img"), "--policy", str(policy_path),
                                     "--json", "--no-progress", *model])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and all(set(r["scores"]) == {"animal", "water"} and r["caption"] for r in rows)
    labelled = tmp_path / "labelled.jsonl"
    lines = [json.dumps({"image": f"img/{p.name}", "categories": ["animal"] if i % 2 else []})
             for i, p in enumerate(images)]
    labelled.write_text("\n".join(lines) + "\n")
    out = tmp_path / "calibrated.yaml"
    result = runner.invoke(cli_app, ["moderate", "calibrate", "--policy", str(policy_path), "--labelled",
                                     str(labelled), "--target-precision", "0.5", "--out", str(out), *model])
    assert result.exit_code == 0, result.output
    calibrated = Policy.load(out)
    assert calibrated.categories[0].calibration["images"] == 4
    assert calibrated.categories[0].calibration["precision"] >= 0.5
    labelled.write_text('{"image": 3}\n')
    with pytest.raises(DataError):
        from blipkit.tasks.moderation import read_labelled

        read_labelled(labelled)

"""Zero-shot tags: the vocabulary, the ITC softmax scores, ITM re-scoring, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blipkit.errors import PolicyError, TextError
from blipkit.tasks import tags as tags_task
from test_index_helpers import blip, cli_app, make_images, tiny_builtin  # noqa: F401


def test_builtin_vocabulary() -> None:
    labels = tags_task.read_labels(None)
    assert 250 <= len(labels) <= 400 and len(set(labels)) == len(labels)
    assert {"dog", "cat", "beach", "car", "pizza"} <= set(labels)
    assert not any(label.startswith("#") or label != label.strip() for label in labels)


def test_custom_vocabulary_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("# animals\ndog\n\ncat\ndog\n")
    assert tags_task.read_labels(path) == ["dog", "cat"]
    path.write_text("# nothing\n")
    with pytest.raises(PolicyError, match="no labels"):
        tags_task.read_labels(path)
    with pytest.raises(PolicyError):
        tags_task.read_labels(tmp_path / "missing.txt")
    with pytest.raises(PolicyError, match="placeholder"):
        tags_task.prompts(["dog"], "a photo")
    assert tags_task.prompts(["dog"]) == ["a photo of a dog"]
    with pytest.raises(TextError, match=r"label 'xxxx.*characters long"):  # it crashed the tag command
        tags_task.prompts(["dog", "x" * 20_000])


def test_softmax_scores_and_pick() -> None:
    images = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    texts = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    scores = tags_task.softmax_scores(images, texts, 0.1)
    assert np.allclose(scores.sum(axis=1), 1.0)
    expected = np.exp(np.array([1.0, 0.6, 0.0]) / 0.1)
    assert np.allclose(scores[0], expected / expected.sum())
    labels = ["a", "b", "c"]
    assert [name for name, _ in tags_task.pick(scores[0], labels, 2, None)] == ["a", "b"]
    assert [name for name, _ in tags_task.pick(scores[1], labels, None, 0.1)] == ["c", "b"]


def test_tag_features_itc_and_itm(blip, tmp_path: Path) -> None:  # noqa: F811
    images = [str(p) for p in make_images(tmp_path, 2)] + [str(tmp_path / "missing.png")]
    labels = ["dog", "cat", "beach", "car", "tree", "pizza"]
    features = blip.encode_images(images)
    itc = tags_task.tag_features(blip.checkpoint, features, labels, k=None)
    assert not itc[2].ok and itc[2].error_code == "image_not_found"
    for result in itc[:2]:
        scores = [s for _, s in result.tags]
        assert sorted(result.tags, key=lambda t: -t[1]) == result.tags
        assert sum(scores) == pytest.approx(1.0, abs=1e-5) and len(scores) == 6
    top = tags_task.tag_features(blip.checkpoint, features, labels, k=2, itm=True, itm_candidates=3)
    for i in range(2):
        names = [name for name, _ in top[i].tags]
        assert len(names) == 2
        assert set(names) <= {name for name, _ in itc[i].tags[:3]}  # re-scored among the best ITC ones
        direct = blip.match([images[i]], tags_task.prompts(names))
        assert [s for _, s in top[i].tags] == pytest.approx([r.score for r in direct], abs=1e-5)


def test_cli_tag(cli_app, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    images = make_images(tmp_path / "img", 2)
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\nbeach\n")
    runner = CliRunner()
    result = runner.invoke(cli_app, ["tag", str(tmp_path / "img"), "--labels", str(labels), "-k", "2",
                                     "--json", "--model", str(tiny_builtin), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in images]
    assert all(len(r["tags"]) == 2 and r["tags"][0][1] >= r["tags"][1][1] for r in rows)
    result = runner.invoke(cli_app, ["tag", str(images[0]), "--threshold", "0.0", "--json", "--itm",
                                     "--labels", str(labels), "--model", str(tiny_builtin), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["tags"]) == 3  # threshold alone: every label above it

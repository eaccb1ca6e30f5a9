"""CapFilt: synthetic captions, the ITM filter's threshold and quota, and the corruption experiment script."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

import blipkit
from blipkit.capfilt import capfilt
from blipkit.data import CaptionRecord, load_caption_dataset
from blipkit.tasks.generation import GenerationSettings
from blipkit.training.toy_data import make_caption_dataset

SAMPLING = GenerationSettings(decoding="nucleus", max_new_tokens=6, min_new_tokens=1)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capfilt")


@pytest.fixture(scope="module")
def model_path(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["builtin"]


@pytest.fixture(scope="module")
def blip(model_path: Path) -> blipkit.Blip:
    return blipkit.load(model_path)


@pytest.fixture(scope="module")
def data(root: Path) -> Path:
    return make_caption_dataset(root / "data", 4)


@pytest.fixture(scope="module")
def records(data: Path) -> list[CaptionRecord]:
    return load_caption_dataset(data)


def test_threshold_keeps_what_passes(blip: blipkit.Blip, records: list[CaptionRecord]) -> None:
    result = capfilt(records, blip, num_synthetic=2, threshold=0.5, settings=SAMPLING)
    originals = [d for d in result.decisions if d.source == "original"]
    synthetic = [d for d in result.decisions if d.source == "synthetic"]
    assert len(originals) == sum(len(r.captions) for r in records)
    assert 0 < len(synthetic) <= 2 * len(records)
    assert all(0 <= d.score <= 1 and d.kept == (d.score >= 0.5) for d in result.decisions)
    kept = {(d.image, d.text) for d in result.decisions if d.kept}
    assert {(r.image, t) for r in result.records for t in r.captions} == kept
    assert result.report["original"]["kept"] + result.report["original"]["dropped"] == len(originals)
    assert result.report["synthetic"]["total"] == len(synthetic)
    # the same threshold decides the same way whatever it is set to: everything passes 0, nothing passes 1
    assert len(capfilt(records, blip, num_synthetic=0, threshold=0.0).records) == len(records)
    nothing = capfilt(records, blip, num_synthetic=0, threshold=1.0)
    assert nothing.records == [] and nothing.report["images"]["dropped"] == len(records)


def test_keep_top_is_a_quota_of_the_best(blip: blipkit.Blip, records: list[CaptionRecord]) -> None:
    result = capfilt(records, blip, num_synthetic=0, keep_top=0.5)
    scores = sorted((d.score for d in result.decisions), reverse=True)
    kept = [d.score for d in result.decisions if d.kept]
    assert len(kept) >= math.ceil(0.5 * len(scores))  # ties at the cut are all kept
    assert min(kept) >= max(d.score for d in result.decisions if not d.kept)


def test_sampling_is_seeded(blip: blipkit.Blip, records: list[CaptionRecord]) -> None:
    def texts(seed: int) -> list[str]:
        result = capfilt(records, blip, num_synthetic=1, threshold=0.0, settings=SAMPLING, seed=seed)
        return [d.text for d in result.decisions if d.source == "synthetic"]

    assert texts(3) == texts(3)


def test_broken_images_are_dropped_and_counted(
    blip: blipkit.Blip, records: list[CaptionRecord], tmp_path: Path
) -> None:
    broken = tmp_path / "x.png"
    broken.write_bytes(b"")
    result = capfilt(
        [*records, CaptionRecord(str(broken), ["a ball"], "x")], blip, num_synthetic=0, threshold=0.0
    )
    assert result.report["images"]["failed"] == 1 and str(broken) in result.failed
    assert len(result.records) == len(records)


def test_capfilt_experiment_script(model_path: Path, root: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "capfilt_experiment", REPO / "scripts" / "capfilt_experiment.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = make_caption_dataset(root / "exp", 6)
    records = load_caption_dataset(data)
    noisy, corrupted = script.corrupt(records, 0.5, seed=1)
    assert len(corrupted) == 6  # half of 12 captions
    for i, j in corrupted:
        assert noisy[i].captions[j] not in records[i].captions  # every toy image says something else
    assert script.corrupt(records, 0.5, seed=1)[1] == corrupted
    report = script.main(
        [
            "--model",
            str(model_path),
            "--data",
            str(data),
            "--split",
            "all",
            "--fraction",
            "0.5",
            "--keep-top",
            "0.5",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    detection = report["detection"]
    assert detection["captions"] == 12 and detection["corrupted"] == 6
    assert 0 <= detection["precision"] <= 1 and 0 <= detection["recall"] <= 1
    assert 0 <= detection["auc"] <= 1
    saved = json.loads((tmp_path / "capfilt_experiment.json").read_text())
    assert saved["detection"] == json.loads(json.dumps(detection))
    assert len((tmp_path / "decisions.jsonl").read_text().splitlines()) == 12
    assert load_caption_dataset(tmp_path / "noisy.json")


def test_detection_scores_and_auc() -> None:
    spec = importlib.util.spec_from_file_location(
        "capfilt_experiment", REPO / "scripts" / "capfilt_experiment.py"
    )
    script = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(script)  # type: ignore[union-attr]
    assert script.roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert script.roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert script.roc_auc([0.1, 0.9], [True, False]) == 0.0

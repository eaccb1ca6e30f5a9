"""scripts/index_flickr_eval.py end to end with a tiny model: on a generated Karpathy-format set, and
(slow) on a slice of the real Flickr8k test split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from test_index_helpers import make_images, tiny_builtin  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "index_flickr_eval.py"
FLICKR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flickr8k" / "dataset_flickr8k.json"


def _script():
    spec = importlib.util.spec_from_file_location("index_flickr_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_script_on_generated_karpathy_set(tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    images = make_images(tmp_path / "images", 6)
    data = {"dataset": "toy", "images": [
        {"filename": p.name, "imgid": i, "split": "test" if i < 5 else "train",
         "sentences": [{"raw": f"a dog number {i}"}, {"raw": f"a red ball {i}"}]}
        for i, p in enumerate(images)
    ]}
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    out = tmp_path / "report.json"
    code = _script().main(["--data", str(tmp_path / "dataset.json"), "--model", str(tiny_builtin), "--db",
                           str(tmp_path / "db"), "--decoding", "greedy", "--max-new-tokens", "4",
                           "--rerank-top", "3", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert (report["images"], report["queries"]) == (5, 10)
    assert set(report["modes"]) == {"itc", "hybrid", "itc+rerank", "hybrid+rerank"}
    for name, row in report["modes"].items():
        assert row["R@1"] <= row["R@5"] <= row["R@10"]
        # five images: the right one is always within the first ten (re-ranking keeps only the top 3)
        assert row["R@10"] == (100.0 if "rerank" not in name else row["R@5"])


@pytest.mark.slow
@pytest.mark.skipif(not FLICKR.exists(), reason="Flickr8k is not in ../shared/data")
def test_eval_script_on_a_flickr_slice(tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "report.json"
    assert _script().main(["--data", str(FLICKR), "--limit", "12", "--model", str(tiny_builtin), "--db",
                           str(tmp_path / "db"),
                           "--decoding", "greedy", "--max-new-tokens", "5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["images"], report["queries"]) == (12, 60)

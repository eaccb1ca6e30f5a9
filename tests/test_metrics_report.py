"""Evaluation reports: the rich table, the JSON report and the predictions JSONL."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
from rich.console import Console

from assistant.evaluation.report import assistant_version, print_table, save_predictions, write_report


def test_write_report_holds_everything(tmp_path: Path) -> None:
    metrics = {"BLEU-4": np.float64(31.25), "METEOR": None, "CIDEr": math.nan, "notes": ["SPICE skipped"]}
    out = write_report(
        tmp_path / "reports" / "eval.json",
        task="caption",
        model="builtin",
        data=tmp_path / "data.json",
        split="test",
        metrics=metrics,
        seconds=12.34567,
        extra={"limit": np.int64(100)},
    )
    report = json.loads(out.read_text())
    assert report["assistant_version"] == assistant_version() != ""
    assert report["task"] == "caption" and report["model"] == "builtin" and report["split"] == "test"
    assert report["data"] == str(tmp_path / "data.json")
    assert report["metrics"] == {"BLEU-4": 31.25, "METEOR": None, "CIDEr": None, "notes": ["SPICE skipped"]}
    assert report["seconds"] == 12.346
    assert report["extra"] == {"limit": 100}
    assert report["created"].endswith("+00:00")


def test_save_predictions_jsonl(tmp_path: Path) -> None:
    rows = [
        {"image_id": "1", "caption": "a dog", "score": np.float32(0.5)},
        {"image_id": "2", "caption": "é"},
    ]
    assert save_predictions(tmp_path / "out" / "preds.jsonl", rows) == 2
    lines = (tmp_path / "out" / "preds.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"image_id": "1", "caption": "a dog", "score": 0.5},
        {"image_id": "2", "caption": "é"},
    ]


def test_print_table_formats_values_and_notes() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None)
    print_table(
        {
            "BLEU-4": 31.256,
            "METEOR": None,
            "n_images": 1000,
            "by_type": {"yes/no": 80.0},
            "notes": ["METEOR missing: [no java]"],
        },
        title="caption",
        console=console,
    )
    text = buffer.getvalue()
    assert "31.26" in text and "n/a" in text and "1,000" in text and "by_type.yes/no" in text
    assert "note: METEOR missing: [no java]" in text  # brackets are not eaten as rich markup
    assert "notes" not in text.replace("note:", "")

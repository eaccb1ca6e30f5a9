"""Showing and saving evaluation results: a rich table, a JSON report, a JSONL of predictions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from assistant.datasets.files import atomic_write_text


def assistant_version() -> str:
    """The installed blip-assistant version, or "unknown" when running from a source tree not installed."""
    try:
        return importlib.metadata.version("blip-assistant")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None, paths to text."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2f}" if math.isfinite(value) else "n/a"
    return str(value)


def _rows(metrics: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, value in metrics.items():
        if key == "notes":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _rows(value, f"{name}.")
        else:
            yield name, _format(value)


def print_table(metrics: Mapping[str, Any], *, title: str | None = None, console: Any | None = None) -> None:
    """Print metrics as a two-column rich table (floats to 2 decimals, None as n/a), notes below."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in _rows(metrics):
        table.add_row(name, value)
    console.print(table)
    for note in metrics.get("notes") or []:
        console.print(f"note: {note}", markup=False, highlight=False)


def write_report(
    path: str | os.PathLike[str],
    *,
    task: str,
    model: str,
    data: str,
    split: str | None,
    metrics: Mapping[str, Any],
    seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one evaluation's results as JSON, with what produced them (blip-assistant version, time)."""
    report = {
        "assistant_version": assistant_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": task,
        "model": model,
        "data": os.fspath(data),
        "split": split,
        "seconds": round(float(seconds), 3),
        "metrics": metrics,
        "extra": dict(extra or {}),
    }
    out = Path(path)
    atomic_write_text(out, json.dumps(_plain(report), indent=2, ensure_ascii=False) + "\n")
    return out


def save_predictions(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write prediction rows as JSONL (one JSON object a line); returns how many were written."""
    lines = [json.dumps(_plain(row), ensure_ascii=False) for row in rows]
    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)

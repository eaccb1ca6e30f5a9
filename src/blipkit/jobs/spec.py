"""What a job is: one plain, JSON-serialisable record that the driver and every worker share."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from blipkit import defaults
from blipkit.errors import JobError
from blipkit.runtime.resolve import portable_name

OPS: tuple[str, ...] = ("caption", "embed", "index", "capfilt")
FORMATS: tuple[str, ...] = ("parquet", "jsonl")
# The head each op needs (checked when a worker loads the model, so a wrong model fails at once).
OP_TASKS = {"caption": "caption", "embed": "itc", "index": "itc", "capfilt": "itm"}


@dataclass(frozen=True)
class JobSpec:
    """One batch job: read ``input``, run ``op`` with ``model``, write ``output``.

    ``options`` holds the op's own settings (decoding settings for ``caption``, the threshold for
    ``capfilt``...); everything in it, with ``op``, ``model``, ``shard_size`` and ``format``, decides the
    output, so a resumed job must agree on all of them (see :meth:`identity`). ``batch_size``, ``device``,
    ``dtype``, ``threads`` and ``fast`` only decide how fast it goes.
    """

    op: str
    input: str
    output: str
    model: str = defaults.DEFAULT_MODEL
    batch_size: int = defaults.BATCH_SIZE
    shard_size: int = defaults.JOB_SHARD_SIZE
    format: str = "parquet"
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    fast: bool | None = None  # None: blipkit.load's default, decided on each worker's own CPU
    image_column: str | None = None
    text_column: str | None = None
    allow_urls: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise JobError(f"unknown job {self.op!r}; choose from {', '.join(OPS)}")
        if self.format not in FORMATS:
            raise JobError(f"unknown output format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.op == "index" and self.format != "parquet":
            raise JobError("the index job writes into a blipkit index; --format does not apply to it")
        if self.batch_size < 1 or self.shard_size < 1:
            raise JobError("batch size and shard size must be at least 1")
        # A local model folder by its absolute path: workers (Ray's among them) and a re-run from another
        # folder then load the same model, and the re-run is recognised as the same job.
        object.__setattr__(self, "model", portable_name(self.model, Path(self.model).expanduser()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def identity(self) -> dict[str, Any]:
        """What the output depends on: a resumed job must match the one that wrote the output so far."""
        return {
            "op": self.op, "model": self.model, "shard_size": self.shard_size, "format": self.format,
            "image_column": self.image_column, "text_column": self.text_column,
            "options": json.loads(json.dumps(self.options, sort_keys=True)),
        }

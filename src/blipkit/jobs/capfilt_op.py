"""The ``capfilt`` op: BLIP's CapFilt (:func:`blipkit.capfilt.capfilt`) over a dataset, shard by shard.

Each image's texts (its web caption from the input's text column or the tar's ``.txt``, plus
``num_synthetic`` captions the captioner samples) are scored by the ITM head; every text becomes one row
(``text``, ``source`` original|synthetic, ``score``, ``kept`` = score >= threshold). An image that could
not be read gets one row with the error. BLIP's quota variant (``keep_top``) ranks all texts of the
whole dataset, which no shard sees: apply it to the ``score`` column of the finished output instead.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from blipkit import defaults
from blipkit.errors import BlipkitError, JobError
from blipkit.jobs.ops import HEAD, TAIL, ModelOp, _fail, generation_settings
from blipkit.jobs.reader import Sample
from blipkit.jobs.spec import JobSpec


class CapFiltOp(ModelOp):
    """Captions (nucleus sampling) and ITM-filters the texts of each batch of images."""

    fields = (
        pa.field("text", pa.string()), pa.field("source", pa.string()), pa.field("score", pa.float64()),
        pa.field("kept", pa.bool_()),
    )

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> tuple[float, int, str | None, Any]:
        options = dict(options)
        threshold = options.pop("threshold", defaults.CAPFILT_THRESHOLD)
        num_synthetic = options.pop("num_synthetic", defaults.CAPFILT_NUM_SYNTHETIC)
        captioner = options.pop("captioner", None)
        if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise JobError(f"bad capfilt options: threshold is an ITM probability, 0 to 1, not {threshold!r}")
        if not isinstance(num_synthetic, int) or num_synthetic < 0:
            raise JobError(f"bad capfilt options: num_synthetic must be a whole number >= 0, not "
                           f"{num_synthetic!r}")
        settings = generation_settings("capfilt", options, decoding="nucleus")
        return float(threshold), num_synthetic, captioner, settings

    def __init__(self, spec: JobSpec) -> None:
        import blipkit

        self.threshold, self.num_synthetic, captioner, self.settings = self.parse_options(spec.options)
        super().__init__(spec)
        self.captioner = (blipkit.load(captioner, "caption", device=spec.device, dtype=spec.dtype,
                                       fast=spec.fast) if captioner else None)
        self.schema = pa.schema([*HEAD, *self.fields, *TAIL])

    def __call__(self, samples: list[Sample], seed: int = 0) -> list[dict[str, Any]]:  # type: ignore[override]
        from blipkit.capfilt import capfilt
        from blipkit.data.records import CaptionRecord

        readable = [i for i, s in enumerate(samples) if s.error is None]
        # Blip.encode_images takes bytes as well as paths, so tar members and object-store images go as is.
        records = [CaptionRecord(samples[i].payload, _texts(samples[i].text), samples[i].key)
                   for i in readable]
        decisions: dict[int, list[Any]] = {}
        failed: dict[Any, str] = {}
        error: BlipkitError | None = None
        if records:
            try:
                result = capfilt(records, self.blip, self.captioner, num_synthetic=self.num_synthetic,
                                 threshold=self.threshold, settings=self.settings,
                                 batch_size=self.spec.batch_size, seed=seed)
                for d in result.decisions:
                    decisions.setdefault(d.index, []).append(d)
                failed = result.failed
            except BlipkitError as exc:  # none of the images could be read
                error = exc
        rows: list[dict[str, Any]] = []
        position = {sample_index: n for n, sample_index in enumerate(readable)}
        for i, sample in enumerate(samples):
            n = position.get(i)
            if n is not None and decisions.get(n):
                for d in decisions[n]:
                    rows.append({"key": sample.key, "image": sample.image, "text": d.text, "source": d.source,
                                 "score": d.score, "kept": bool(d.kept), "error": None, "error_code": None})
                continue
            row = self._row(sample)
            if sample.error is not None:
                _fail(row, sample.error)
            elif error is not None:
                _fail(row, error)
            elif n is not None and records[n].image in failed:
                row["error"], row["error_code"] = failed[records[n].image], "bad_image"
            else:
                row["error"] = "no text to judge (no caption and no synthetic one)"
                row["error_code"] = "bad_text"
            rows.append(row)
        return rows


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)] if str(value).strip() else []

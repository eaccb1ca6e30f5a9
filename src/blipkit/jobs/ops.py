"""The job's model ops: a batch of samples in, one output row per sample out.

An op loads its model once, when it is made (once per worker), and is then called batch after batch.
Every row has ``key`` and ``image`` first and ``error`` / ``error_code`` last (null when that image was
fine), and the columns of each op are fixed by its Arrow :attr:`~ModelOp.schema`, so that every part file
of a job has the same schema even when all its images failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from blipkit.errors import BlipkitError, JobError
from blipkit.jobs.reader import Sample
from blipkit.jobs.spec import OP_TASKS, JobSpec

HEAD = [pa.field("key", pa.string()), pa.field("image", pa.string())]
TAIL = [pa.field("error", pa.string()), pa.field("error_code", pa.string())]


class ModelOp:
    """Base class: loads ``spec.model`` with the head the op needs and encodes images once per batch."""

    fields: Sequence[pa.Field] = ()

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> Any:
        """The op's settings from ``spec.options``; a JobError names a bad one. Needs no model, so that a
        job can be refused before it writes anything (:func:`check_options`)."""
        return None

    def __init__(self, spec: JobSpec) -> None:
        import blipkit

        self.spec = spec
        self.blip = blipkit.load(spec.model, OP_TASKS[spec.op], device=spec.device, dtype=spec.dtype,
                                 threads=spec.threads, fast=spec.fast)
        self.schema = pa.schema([*HEAD, *self.fields, *TAIL])

    def __call__(self, samples: Sequence[Sample], seed: int = 0) -> list[dict[str, Any]]:
        """Rows for ``samples``. ``seed`` fixes any sampling, so that a retried batch gives the same rows."""
        import torch

        from blipkit.runtime.encoding import encode_images

        torch.manual_seed(seed)
        ok = [i for i, s in enumerate(samples) if s.error is None]
        feats = encode_images(self.blip.checkpoint, [samples[i].payload for i in ok],
                              batch_size=self.spec.batch_size, allow_urls=self.spec.allow_urls)
        rows = [self._row(s) for s in samples]
        for i, s in enumerate(samples):
            if s.error is not None:
                _fail(rows[i], s.error)
        for position, exc in feats.errors.items():
            _fail(rows[ok[position]], exc, samples[ok[position]].image)
        good = [position for position in range(len(ok)) if position not in feats.errors]
        if good:
            selected = feats.select(good)
            selected.sizes = {n: feats.sizes[p] for n, p in enumerate(good) if p in feats.sizes}
            try:
                self.fill([rows[ok[p]] for p in good], [samples[ok[p]] for p in good], selected)
            except BlipkitError as exc:  # e.g. a prompt the decoder refuses: the batch fails, not the shard
                for p in good:
                    _fail(rows[ok[p]], exc)
        return rows

    def _row(self, sample: Sample) -> dict[str, Any]:
        row: dict[str, Any] = {"key": sample.key, "image": sample.image}
        row.update({f.name: None for f in self.fields})
        row.update(error=None, error_code=None)
        return row

    def fill(self, rows: list[dict[str, Any]], samples: list[Sample], features: Any) -> None:
        """Fill the op's columns of ``rows`` from the encoded images ``features`` (all of which loaded)."""
        raise NotImplementedError


def _fail(row: dict[str, Any], exc: BlipkitError, label: str | None = None) -> None:
    message = str(exc)
    if label and message.startswith("<bytes>"):  # an image from a tar or an object store: say which
        message = label + message[len("<bytes>"):]
    row["error"], row["error_code"] = message, exc.code


def generation_settings(op: str, options: dict[str, Any], **base: Any) -> Any:
    """``GenerationSettings(**base, **options)``, or a JobError that says which job's options are bad."""
    from blipkit.tasks.generation import GenerationSettings

    try:
        return GenerationSettings(**{**base, **options})
    except (TypeError, ValueError) as exc:
        raise JobError(f"bad {op} options {options}: {exc}") from exc


class CaptionOp(ModelOp):
    """``caption``: a caption and its confidence per image (decoding settings from ``spec.options``)."""

    fields = (pa.field("caption", pa.string()), pa.field("confidence", pa.float64()))

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> tuple[str | None, Any]:
        options = dict(options)
        prompt = options.pop("prompt", None)
        return prompt, generation_settings("caption", options)

    def __init__(self, spec: JobSpec) -> None:
        self.prompt, self.settings = self.parse_options(spec.options)
        super().__init__(spec)

    def fill(self, rows: list[dict[str, Any]], samples: list[Sample], features: Any) -> None:
        results = self.blip.caption(features, prompt=self.prompt, settings=self.settings,
                                    batch_size=self.spec.batch_size)
        for row, result in zip(rows, results, strict=True):
            if result.ok:
                row["caption"], row["confidence"] = result.caption, result.confidence
            else:
                row["error"], row["error_code"] = result.error, result.error_code


class EmbedOp(ModelOp):
    """``embed``: the image's L2-normalised ITC vector (``embedding``, float32) per image."""

    fields = (pa.field("embedding", pa.list_(pa.float32())),)

    def fill(self, rows: list[dict[str, Any]], samples: list[Sample], features: Any) -> None:
        vectors = self.blip.embed_images(features, batch_size=self.spec.batch_size)
        for row, vector in zip(rows, vectors, strict=True):
            row["embedding"] = vector.tolist()


def op_class(name: str) -> type[ModelOp]:
    """The class of the op ``name``."""
    if name == "caption":
        return CaptionOp
    if name == "embed":
        return EmbedOp
    if name == "index":
        from blipkit.jobs.index_op import IndexOp

        return IndexOp
    if name == "capfilt":
        from blipkit.jobs.capfilt_op import CapFiltOp

        return CapFiltOp
    raise JobError(f"unknown job {name!r}")


def make_op(spec: JobSpec) -> ModelOp:
    """The op ``spec.op`` names, with its model loaded."""
    return op_class(spec.op)(spec)


def check_options(spec: JobSpec) -> None:
    """Refuse a job whose options are bad before it loads a model or writes anything."""
    op_class(spec.op).parse_options(spec.options)

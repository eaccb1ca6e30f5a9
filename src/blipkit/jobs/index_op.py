"""The ``index`` op: the rows of a blipkit image index (caption, embedding, tags, file facts) per image.

Its rows carry every column of :func:`blipkit.index.schema.images_schema` but ``indexed_at`` (set when
the driver upserts them), computed as ``blipkit index add`` computes them: one vision pass feeds the
caption, the ITC vector and the zero-shot tags of the built-in vocabulary. The index is keyed on
``path``: a local file's absolute path (as ``index add`` keys it, so the two agree on what is indexed),
otherwise the sample's label (a URL, ``shard.tar#member``, ``s3://bucket/key``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from blipkit import defaults
from blipkit.errors import ImageNotFoundError, ImageTooLargeError, JobError
from blipkit.index.schema import written_fields
from blipkit.io import is_url
from blipkit.jobs.ops import ModelOp, generation_settings
from blipkit.jobs.reader import Sample
from blipkit.jobs.spec import JobSpec


def content_hash(data: bytes) -> str:
    from blipkit.index.scan import content_hash as index_hash

    return index_hash(data)


class IndexOp(ModelOp):
    """Caption + ITC vector + tags + file facts per image, ready for :meth:`ImageIndex.upsert`."""

    fields = written_fields()

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> tuple[int, Any]:
        options = dict(options)
        n_tags = options.pop("tags", defaults.INDEX_TAGS)
        if not isinstance(n_tags, int) or n_tags < 0:
            raise JobError(f"bad index options: tags must be a whole number >= 0, not {n_tags!r}")
        return n_tags, generation_settings("index", options)

    def __init__(self, spec: JobSpec) -> None:
        from blipkit.tasks import tags as tags_task

        self.n_tags, self.settings = self.parse_options(spec.options)
        super().__init__(spec)
        self.blip.checkpoint.require("caption")
        ckpt = self.blip.checkpoint
        self.labels = tags_task.read_labels(None) if self.n_tags > 0 else []
        self.label_vectors = (tags_task.text_matrix(ckpt, tags_task.prompts(self.labels))
                              if self.labels else None)
        self.temperature = tags_task.temperature(ckpt)

    def __call__(self, samples: list[Sample], seed: int = 0) -> list[dict[str, Any]]:  # type: ignore[override]
        facts = [self._read(s) for s in samples]
        rows = super().__call__(samples, seed)
        for row, fact in zip(rows, facts, strict=True):
            row.update(fact)
        return rows

    def _read(self, sample: Sample) -> dict[str, Any]:
        """The file facts of ``sample``, reading a local file's bytes once (hashed, then decoded)."""
        if sample.error is not None or sample.payload is None:
            return {"path": sample.image, "hash": "", "size": 0, "mtime_ns": 0}
        payload = sample.payload
        if isinstance(payload, str) and not is_url(payload):
            path = Path(payload).expanduser()
            try:
                resolved = path.resolve()
                st = resolved.stat()
                if st.st_size > defaults.MAX_IMAGE_BYTES:
                    raise ImageTooLargeError(f"{payload}: {st.st_size} bytes is more than the limit")
                with open(resolved, "rb") as f:
                    data = f.read(defaults.MAX_IMAGE_BYTES + 1)
            except ImageTooLargeError as exc:
                sample.error = exc
                return {"path": str(path.absolute()), "hash": "", "size": 0, "mtime_ns": 0}
            except (OSError, ValueError) as exc:
                sample.error = ImageNotFoundError(f"{payload}: cannot read: {exc}")
                return {"path": os.path.abspath(payload), "hash": "", "size": 0, "mtime_ns": 0}
            sample.payload = data
            return {"path": str(resolved), "hash": content_hash(data), "size": len(data),
                    "mtime_ns": st.st_mtime_ns}
        if isinstance(payload, bytes):
            return {"path": sample.image, "hash": content_hash(payload), "size": len(payload), "mtime_ns": 0}
        # A URL is fetched by the decoder; the index needs a stable id for it, not its bytes.
        return {"path": sample.image, "hash": content_hash(b"url:" + str(payload).encode()), "size": 0,
                "mtime_ns": 0}

    def fill(self, rows: list[dict[str, Any]], samples: list[Sample], features: Any) -> None:
        from blipkit.tasks import embed as embed_task
        from blipkit.tasks import tags as tags_task

        captions = self.blip.caption(features, settings=self.settings, batch_size=self.spec.batch_size)
        vectors = embed_task.image_vectors(self.blip.checkpoint, features.embeds).cpu().numpy()
        if self.label_vectors is not None:
            scores = tags_task.softmax_scores(vectors, self.label_vectors, self.temperature)
            tags = [tags_task.pick(s, self.labels, self.n_tags, None) for s in scores]
        else:
            tags = [[] for _ in range(len(vectors))]
        for i, (row, cap) in enumerate(zip(rows, captions, strict=True)):
            if not cap.ok:
                row["error"], row["error_code"] = cap.error, cap.error_code
                continue
            width, height = features.sizes.get(i, (None, None))
            row.update(
                width=width, height=height, caption=cap.caption, caption_confidence=cap.confidence,
                vector=np.asarray(vectors[i], dtype=np.float32).tolist(),
                tags=[t for t, _ in tags[i]], tag_scores=[float(s) for _, s in tags[i]],
            )

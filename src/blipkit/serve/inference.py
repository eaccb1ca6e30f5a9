"""What the batcher's worker thread runs: one :class:`~blipkit.Blip` call over the images of every request
in a batch, split back into one result per request.

Each handler takes ``(key, payloads)`` — the batch key holds the parameters all requests of the batch
share — and returns one entry per payload: its result, or the exception that fails that request alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from blipkit.blip import Blip
from blipkit.errors import BlipkitError
from blipkit.results import Result
from blipkit.tasks import caption as caption_task

CAPTION, ASK, MATCH, EMBED = "caption", "ask", "match", "embed"
TAG, MODERATE, SEARCH = "tag", "moderate", "search"


@dataclass(frozen=True)
class AskJob:
    images: list[Image.Image]
    question: str


@dataclass(frozen=True)
class MatchJob:
    images: list[Image.Image]
    texts: list[str]


@dataclass(frozen=True)
class EmbedJob:
    images: list[Image.Image]
    texts: list[str]


def _failure(result: Result) -> BlipkitError:
    """The error a failed per-image result carries, as an exception with the same code."""
    exc = BlipkitError(result.error or "failed")
    exc.code = result.error_code or BlipkitError.code
    return exc


def _split(items: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    out, start = [], 0
    for n in sizes:
        out.append(list(items[start : start + n]))
        start += n
    return out


def _per_job(results: list[Result], sizes: Sequence[int]) -> list[Any]:
    """Results grouped per job; a job with any failed image gets that image's error instead."""
    grouped: list[Any] = []
    for chunk in _split(results, sizes):
        failed = next((r for r in chunk if not r.ok), None)
        grouped.append(_failure(failed) if failed is not None else chunk)
    return grouped


class Handlers:
    """The batch handlers of one loaded model (plus the tagger and moderator, when there are any)."""

    def __init__(self, blip: Blip, tagger: Any = None, moderator: Any = None, search: Any = None) -> None:
        self.blip = blip
        self.tagger = tagger
        self.moderator = moderator
        self.backend = search

    def table(self) -> dict[str, Any]:
        table = {CAPTION: self.caption, ASK: self.ask, MATCH: self.match, EMBED: self.embed}
        if self.tagger is not None:
            table[TAG] = self.tag
        if self.moderator is not None:
            table[MODERATE] = self.moderate
        if self.backend is not None:
            table[SEARCH] = self.search
        return table

    # key: (prompt, GenerationSettings); payload: list of images
    def caption(self, key: Hashable, payloads: Sequence[list[Image.Image]]) -> list[Any]:
        prompt, settings = key  # type: ignore[misc]
        # A prompt too long for the decoder fails the request (422), not each image in it. Here, not
        # in the request handler: the tokenizer is used by this thread only.
        caption_task.prompt_ids(self.blip.checkpoint, prompt, 1)
        images = [im for job in payloads for im in job]
        results = self.blip.caption(images, prompt=prompt, settings=settings, batch_size=len(images))
        return _per_job(list(results), [len(job) for job in payloads])

    # key: choices (a tuple, or None for open answers); payload: AskJob
    def ask(self, key: Hashable, payloads: Sequence[AskJob]) -> list[Any]:
        choices = list(key) if key else None  # type: ignore[call-overload]
        images = [im for job in payloads for im in job.images]
        questions = [job.question for job in payloads for _ in job.images]
        results = self.blip.ask(images, questions, choices=choices, batch_size=len(images))
        return _per_job(list(results), [len(job.images) for job in payloads])

    # payload: MatchJob; every (image, text) pair of every job goes through the ITM head in one call
    def match(self, key: Hashable, payloads: Sequence[MatchJob]) -> list[Any]:
        images = [im for job in payloads for im in job.images]
        features = self.blip.encode_images(images, batch_size=len(images))
        picks: list[int] = []
        texts: list[str] = []
        start = 0
        for job in payloads:
            for i in range(len(job.images)):
                for text in job.texts:
                    picks.append(start + i)
                    texts.append(text)
            start += len(job.images)
        scores = self.blip.match_pairs(features.select(picks), texts, batch_size=max(len(texts), 1))
        out: list[Any] = []
        offset = 0
        for job in payloads:
            n = len(job.images) * len(job.texts)
            out.append(np.asarray(scores[offset : offset + n]).reshape(len(job.images), len(job.texts)))
            offset += n
        return out

    # payload: EmbedJob; images and texts of every job in one vision and one text pass
    def embed(self, key: Hashable, payloads: Sequence[EmbedJob]) -> list[Any]:
        images = [im for job in payloads for im in job.images]
        texts = [t for job in payloads for t in job.texts]
        image_vecs = self.blip.embed_images(images, batch_size=len(images)) if images else None
        text_vecs = self.blip.embed_texts(texts, batch_size=len(texts)) if texts else None
        dim = self.blip.embedding_dim
        out: list[Any] = []
        i = t = 0
        for job in payloads:
            iv = image_vecs[i : i + len(job.images)] if image_vecs is not None else np.zeros((0, dim))
            tv = text_vecs[t : t + len(job.texts)] if text_vecs is not None else np.zeros((0, dim))
            i += len(job.images)
            t += len(job.texts)
            out.append((iv, tv))
        return out

    # key: (top_k, threshold); payload: list of images
    def tag(self, key: Hashable, payloads: Sequence[list[Image.Image]]) -> list[Any]:
        images = [im for job in payloads for im in job]
        results = self.tagger(images, key)
        return _per_job(list(results), [len(job) for job in payloads])

    # key: explain (caption too); payload: list of images
    def moderate(self, key: Hashable, payloads: Sequence[list[Image.Image]]) -> list[Any]:
        images = [im for job in payloads for im in job]
        results = self.moderator(images, key)
        return _per_job(list(results), [len(job) for job in payloads])

    # payload: (query, limit); each query is its own index lookup
    def search(self, key: Hashable, payloads: Sequence[tuple[str, int]]) -> list[Any]:
        out: list[Any] = []
        for query, limit in payloads:
            try:
                out.append(self.backend.search(query, limit))
            except BlipkitError as exc:
                out.append(exc)
        return out


def moderation_fields(result: Any) -> dict[str, Any]:
    """The response fields of one image's :class:`~blipkit.tasks.moderation.ModerationResult`."""
    return {"flagged": bool(result.flagged), "categories": {k: float(v) for k, v in result.scores.items()},
            "flagged_categories": list(result.flagged), "caption": result.caption}

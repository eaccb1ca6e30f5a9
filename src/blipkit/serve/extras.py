"""The tagger and the moderator a server offers besides BLIP's own tasks, built once at startup so that a
request never pays for encoding the vocabulary."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from blipkit.blip import Blip
from blipkit.results import TagResult
from blipkit.runtime.checkpoint import ITC, ITM


class Tagger:
    """Zero-shot tags over blipkit's built-in vocabulary (:mod:`blipkit.tasks.tags`)."""

    def __init__(self, blip: Blip) -> None:
        from blipkit.tasks import tags

        self.blip = blip
        self.labels = tags.read_labels()
        self.vectors = tags.text_matrix(blip.checkpoint, tags.prompts(self.labels))

    def __call__(self, images: Sequence[Image.Image], key: Hashable) -> list[TagResult]:
        from blipkit.tasks import tags

        top_k, threshold = key  # type: ignore[misc]
        features = self.blip.encode_images(list(images), batch_size=max(len(images), 1))
        return tags.tag_features(self.blip.checkpoint, features, self.labels, k=top_k, threshold=threshold,
                                 label_vectors=self.vectors)


class Moderator:
    """Zero-shot moderation under a policy file (:mod:`blipkit.tasks.moderation`)."""

    def __init__(self, blip: Blip, policy_path: Path) -> None:
        from blipkit.tasks.moderation import Policy

        self.blip = blip
        self.policy = Policy.load(policy_path)
        if self.policy.method == "itm":
            blip.checkpoint.require(ITM)

    def __call__(self, images: Sequence[Image.Image], explain: Hashable) -> list[Any]:
        from blipkit.tasks.moderation import moderate_features

        features = self.blip.encode_images(list(images), batch_size=max(len(images), 1))
        return moderate_features(self.blip.checkpoint, features, self.policy, explain=bool(explain))


def load_extras(blip: Blip, policy: Path | None = None) -> dict[str, Any]:
    """``{"tagger": ..., "moderator": ...}`` for what this model can do; the moderator needs a policy.
    A policy that cannot be read raises :class:`~blipkit.errors.PolicyError` (the server does not start)."""
    extras: dict[str, Any] = {}
    if ITC in blip.tasks:
        extras["tagger"] = Tagger(blip)
        if policy is not None:
            extras["moderator"] = Moderator(blip, policy)
    elif policy is not None:
        blip.checkpoint.require(ITC)  # a clear error: moderation needs the ITC head
    return extras

"""Which pictures the personal model speaks for: those where it says one of the user's own words.

A personal model learns the user's words (their dog's name, their rooms' things), and it also moves the
words of nearly every other caption: on Flickr8k test photos with no dog, 70-85 of 100 captions changed,
picking up words of the user's ordinary corrections, and their CIDEr fell 10-17%
(tests/benchmarks/README.md, "Personalization"). So a description keeps the personal model's caption only
when that caption uses one of the user's words; otherwise the base model describes the picture, from the
same vision features. The user's words are the content words that at least :data:`MIN_CORRECTIONS` of
their corrections use and that the base model never said in its own captions of those pictures: a name
given again and again ("Biscuit"), the things of a world the base model does not know ("blackboard",
"heater"), not a word used once in passing. Corrections that nearly all use such words are a world of
their own (:func:`whole_world`): the personal model then describes everything, as it did before the gate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

MIN_CORRECTIONS = 3  # "the user repeated it"; a names run's captions of Flickr8k val photos agree (README)
# When nearly every correction uses the user's words, the corrections are a world of their own (rooms of
# a collection, the user's own style throughout): the personal model then describes every picture. The
# names benchmark's corrections use them in 40% (the dog's ten and a few others), DAQUAR rooms' in 100%.
WORLD_SHARE = 0.8

_WORD = re.compile(r"[a-z]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def user_words(corrections: Iterable[str], base_captions: Iterable[str],
               min_corrections: int = MIN_CORRECTIONS) -> list[str]:
    """The words the personal model speaks for (see the module doc), sorted."""
    from assistant.vision.tasks.generation import FUNCTION_WORDS

    said = {w for caption in base_captions for w in _words(caption)}
    counts = Counter(w for text in corrections for w in set(_words(text)))
    return sorted(w for w, n in counts.items()
                  if n >= min_corrections and w not in said and w not in FUNCTION_WORDS)


def whole_world(corrections: list[str], words: list[str]) -> bool:
    """Whether at least :data:`WORLD_SHARE` of the corrections use one of ``words``."""
    return bool(corrections) and sum(uses(t, words) for t in corrections) >= WORLD_SHARE * len(corrections)


def uses(caption: str, words: Iterable[str]) -> bool:
    """Whether ``caption`` says one of ``words`` (a plural "biscuits" counts for "biscuit")."""
    wanted = set(words)
    return any(w in wanted or w.removesuffix("s") in wanted for w in _words(caption))


class Gate:
    """The user's words and the base model's own weights for the layers a personal version changed, to
    describe with either model from one loaded copy: :meth:`base` swaps tensors and, on the fast path,
    whole converted layers (no copy, no arithmetic), so the personal model comes back exactly."""

    def __init__(self, words: list[str], base_weights: dict[torch.nn.Parameter, torch.Tensor]) -> None:
        self.words = words
        self._base = base_weights  # each adapted layer's weight -> the base model's tensor for it
        # on the fast path: (module holding a converted layer, its attribute, the base model's layer)
        self._layers: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []

    @property
    def base_weights(self) -> dict[torch.nn.Parameter, torch.Tensor]:
        return dict(self._base)

    def convert_layer(self, param: torch.nn.Parameter, model: torch.nn.Module, name: str,
                      fmt: tuple[str, torch.dtype | None, bool], bias: torch.Tensor | None) -> None:
        """``param``'s layer, ``name`` in ``model``, was converted to the fast format ``fmt``
        (:func:`~assistant.vision.runtime.fast.linear_formats`): its base weights become a layer of
        that format, put wherever the personal one is while :meth:`base` lasts."""
        from assistant.vision.runtime.fast import make_linear

        personal = model.get_submodule(name)
        layer = make_linear(self._base.pop(param), bias, *fmt)
        self._layers += [(parent, attr, layer) for parent in model.modules()
                         for attr, child in parent._modules.items() if child is personal]

    def retype(self, param: torch.nn.Parameter, dtype: torch.dtype) -> None:
        """``param`` is now kept in ``dtype`` (the fast plan's stored dtypes): so is its base tensor."""
        self._base[param] = self._base[param].to(dtype)

    @property
    def recaption(self) -> tuple[Any, Any]:
        """``recaption`` for :meth:`~assistant.vision.Blip.describe_signals`: a caption without the user's
        words is said by the base model."""
        return self.speaks_for, self.base

    def speaks_for(self, caption: str | None) -> bool:
        return bool(caption) and uses(caption or "", self.words)

    @contextmanager
    def base(self) -> Iterator[None]:
        personal = {param: param.data for param in self._base}
        layers = [(parent, attr, getattr(parent, attr)) for parent, attr, _ in self._layers]
        for param, tensor in self._base.items():
            param.data = tensor
        for parent, attr, layer in self._layers:
            setattr(parent, attr, layer)
        try:
            yield
        finally:
            for param, tensor in personal.items():
                param.data = tensor
            for parent, attr, layer in layers:
                setattr(parent, attr, layer)


def gate_of(blip: Any) -> Gate | None:
    """The loaded model's gate, when a personal version with the user's words is merged into it."""
    return blip.checkpoint.extras.get("personal_gate")


def captions(blip: Any, images: Any, **generation: Any) -> list[str]:
    """``blip.caption`` as a description says it: the personal model's caption where it uses one of the
    user's words, the base model's elsewhere (from the same vision features)."""
    gate = gate_of(blip)
    recaption = gate.recaption if gate is not None else None
    return [r.caption or "" for r in blip.caption(images, recaption=recaption, **generation)]

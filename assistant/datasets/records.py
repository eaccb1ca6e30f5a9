"""The records every loader returns: one caption record per image, one VQA record per question."""

from __future__ import annotations

from dataclasses import dataclass, field

# Split names are normalised so that `--split val` finds "validation" folders and Karpathy's
# "restval" images (which the Karpathy split itself uses for training) count as train.
SPLIT_ALIASES: dict[str, str] = {
    "validation": "val",
    "valid": "val",
    "dev": "val",
    "restval": "train",
    "training": "train",
    "testing": "test",
}


def normalize_split(split: str | None) -> str | None:
    """Map a split name to the engine's spelling (``validation`` -> ``val``, ``restval`` -> ``train``)."""
    if split is None:
        return None
    name = str(split).strip().lower()
    if not name:
        return None
    return SPLIT_ALIASES.get(name, name)


@dataclass(frozen=True)
class CaptionRecord:
    """One image and all of its captions.

    ``image`` is an absolute path; ``split`` is normalised (see :func:`normalize_split`) or None when
    the source has no split information.
    """

    image: str
    captions: list[str] = field(hash=False)
    image_id: str
    split: str | None = None


@dataclass(frozen=True)
class VQARecord:
    """One question about one image.

    ``answers`` holds every human answer (ten for VQAv2, which VQA accuracy needs; the items of a list
    answer for DAQUAR); ``answer`` is the single reference answer (VQAv2's ``multiple_choice_answer``,
    else the most common answer). Both are empty for test questions that have no annotations.
    """

    image: str
    question: str
    answers: list[str] = field(hash=False)
    answer: str
    question_id: str
    image_id: str
    split: str | None = None


def answer_text(answer: str) -> str:
    """An answer as the model writes and is scored on it: DAQUAR's ``garbage_bin`` is ``garbage bin``."""
    return answer.replace("_", " ").strip()

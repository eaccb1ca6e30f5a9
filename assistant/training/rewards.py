"""CIDEr-D as a training reward: self-critical sequence training (SCST) scores sampled captions with it.

The COCO toolkit's CIDEr (``pycocoevalcap``, what ``blip-assistant model eval caption`` reports) takes its
document
frequencies from the references being scored, so a caption's score depends on the rest of the batch. A
reward must not: here they are counted once over the whole training corpus (one document per image, all
its references), as in Rennie et al. (2017). The arithmetic is the toolkit's own CIDEr-D: n-grams of 1-4
words weighted by tf-idf, the candidate's counts clipped to the reference's, a Gaussian length penalty
(sigma 6), the mean over n, the mean over references, times 10. With the frequencies taken from the
scored references themselves it gives the toolkit's numbers (tests/test_scst.py checks this).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from assistant.evaluation.caption_metrics import simple_ptb_tokenize

MAX_N = 4
SIGMA = 6.0

NGrams = Counter[tuple[str, ...]]


def _ngrams(words: Sequence[str]) -> NGrams:
    counts: NGrams = Counter()
    for n in range(1, MAX_N + 1):
        for i in range(len(words) - n + 1):
            counts[tuple(words[i : i + n])] += 1
    return counts


class CiderD:
    """CIDEr-D of captions against the references of a document (an image), frequencies fixed at init.

    ``references`` maps each document's key to its reference captions.
    """

    def __init__(self, references: Mapping[object, Sequence[str]]) -> None:
        if not references:
            raise ValueError("CIDEr-D needs at least one document of references")
        self._refs: dict[object, list[tuple[list[dict], list[float], int]]] = {}
        grams = {key: [_ngrams(simple_ptb_tokenize(r).split()) for r in refs]
                 for key, refs in references.items()}
        df: Counter[tuple[str, ...]] = Counter()
        for counts in grams.values():
            df.update(set().union(*counts) if counts else set())
        self._df = df
        self._log_docs = math.log(float(len(grams)))
        for key, counts in grams.items():
            self._refs[key] = [self._vector(c) for c in counts]

    def _vector(self, counts: NGrams) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(MAX_N)]
        norm = [0.0] * MAX_N
        length = 0
        for gram, tf in counts.items():
            n = len(gram) - 1
            value = float(tf) * (self._log_docs - math.log(max(1.0, float(self._df[gram]))))
            vec[n][gram] = value
            norm[n] += value * value
            if n == 1:  # the toolkit takes the length from the bigram count
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def score(self, caption: str, key: object) -> float:
        """CIDEr-D of ``caption`` against document ``key``'s references (0-10 scale, as the toolkit)."""
        refs = self._refs[key]
        vec, norm, length = self._vector(_ngrams(simple_ptb_tokenize(caption).split()))
        total = 0.0
        for ref_vec, ref_norm, ref_length in refs:
            delta = float(length - ref_length)
            penalty = math.exp(-(delta * delta) / (2 * SIGMA * SIGMA))
            per_n = 0.0
            for n in range(MAX_N):
                dot = sum(min(v, ref_vec[n].get(g, 0.0)) * ref_vec[n].get(g, 0.0) for g, v in vec[n].items())
                if norm[n] != 0 and ref_norm[n] != 0:
                    dot /= norm[n] * ref_norm[n]
                per_n += dot * penalty
            total += per_n / MAX_N
        return total / len(refs) * 10.0

    def scores(self, captions: Sequence[str], keys: Sequence[object]) -> list[float]:
        return [self.score(c, k) for c, k in zip(captions, keys, strict=True)]

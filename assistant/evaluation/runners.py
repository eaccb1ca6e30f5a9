"""Evaluation runners: a model (:class:`~assistant.vision.blip.Blip`) on dataset records, scored by its
metrics.

- :func:`evaluate_captions`: caption every image (beam search by default) and score against all of its
  references (BLEU, METEOR, ROUGE-L, CIDEr).
- :func:`evaluate_vqa`: answer every question by generation, or by ranking a list of candidate answers,
  and score accuracy (and WUPS when WordNet's data is installed). DAQUAR's answers spell multi-word
  nouns with underscores (``garbage_bin``) and the built-in model writes spaces, so ``_`` becomes a
  space in predictions and references before scoring.
- :func:`evaluate_retrieval`: ITC similarity of every image with every text (each image encoded once),
  Recall@1/5/10 and median rank in both directions, then the top-k candidates of each query re-scored
  by the ITM head (BLIP's evaluation).

Each has a ``*_eval`` twin returning an :class:`EvalRun` (metrics + one prediction row per item), which
the ``blip-assistant model eval`` command writes to disk.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.datasets.records import CaptionRecord, VQARecord, answer_text
from assistant.evaluation.caption_metrics import Tokenizer, caption_scores
from assistant.evaluation.retrieval_metrics import image_to_text_ranks, retrieval_scores, text_to_image_ranks
from assistant.evaluation.vqa_metrics import vqa_accuracy, vqa_scores
from assistant.vision import defaults
from assistant.vision.errors import DataError

if TYPE_CHECKING:
    from assistant.vision.blip import Blip
    from assistant.vision.runtime.encoding import ImageFeatures
    from assistant.vision.tasks.generation import GenerationSettings

EVAL_TASKS = ("caption", "vqa", "retrieval")
# Ranking answers scores each question's (up to rank_k) candidates in one decoder pass; this bounds the rows.
_RANK_ROWS = 512  # x the longest answer x the vocabulary: about 0.5 GB of logits at 8 tokens
# Outside the re-ranked top-k, candidates keep their ITC order but rank below every re-scored one
# (ITC cosines lie in [-1, 1], ITM probabilities in [0, 1]).
_OUTSIDE_TOP_K = -10.0


@dataclass
class EvalRun:
    """One evaluation: its metrics, one prediction row per image/question/query, and its duration."""

    task: str
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def _bar(enabled: bool, total: int, desc: str, unit: str = "img") -> Iterator[Callable[[int], Any]]:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled or total <= 1,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
    try:
        yield bar.update
    finally:
        bar.close()


def _need(blip: Blip, *tasks: str) -> None:
    for task in tasks:
        blip.checkpoint.require(task)  # raises UnsupportedModelError naming the heads it has


# --- captions ------------------------------------------------------------------------------------


def caption_eval(
    blip: Blip,
    records: Sequence[CaptionRecord],
    *,
    settings: GenerationSettings | None = None,
    prompt: str | None = None,
    batch_size: int | None = None,
    meteor: bool = True,
    tokenizer: Tokenizer = "auto",
    progress: bool = False,
) -> EvalRun:
    """Caption each record's image and score the captions against the record's references."""
    from assistant.vision.tasks.generation import GenerationSettings

    _need(blip, "caption")
    if not records:
        raise DataError("no images to caption")
    started = time.monotonic()
    settings = settings or GenerationSettings()
    with _bar(progress, len(records), "caption") as advance:
        results = blip.caption(
            [r.image for r in records],
            settings=settings,
            prompt=prompt,
            batch_size=batch_size,
            progress=advance,
        )
    predictions, rows = {}, []
    for i, (record, result) in enumerate(zip(records, results, strict=True)):
        row = {
            "image_id": record.image_id,
            "image": record.image,
            "caption": result.caption,
            "confidence": result.confidence,
            "references": record.captions,
        }
        if result.ok:
            predictions[i] = result.caption or ""
        else:
            row.update(error=str(result.error), error_code=result.error_code)
        rows.append(row)
    if not predictions:
        raise DataError(f"every one of the {len(records)} images failed to load; nothing to score")
    metrics = caption_scores(
        predictions, {i: records[i].captions for i in predictions}, meteor=meteor, tokenizer=tokenizer
    )
    metrics["n_failed"] = len(records) - len(predictions)
    return EvalRun("caption", metrics, rows, time.monotonic() - started)


def evaluate_captions(blip: Blip, records: Sequence[CaptionRecord], **options: Any) -> dict[str, Any]:
    """Caption metrics (``BLEU-1``..``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr``, 0-100) of ``blip`` on
    ``records``; options as :func:`caption_eval` (``settings``, ``prompt``, ``batch_size``, ``meteor``,
    ``tokenizer``, ``progress``)."""
    return caption_eval(blip, records, **options).metrics


# --- VQA -----------------------------------------------------------------------------------------


def answer_vocabulary(records: Sequence[VQARecord], limit: int | None = None) -> list[str]:
    """The distinct reference answers of ``records`` (``_`` written as spaces), most frequent first."""
    from collections import Counter

    counts = Counter(answer_text(r.answer or r.answers[0]) for r in records if r.answer or r.answers)
    return [a for a, _ in counts.most_common(limit) if a]


def vqa_eval(
    blip: Blip,
    records: Sequence[VQARecord],
    *,
    choices: Sequence[str] | None = None,
    rank_k: int | None = None,
    settings: GenerationSettings | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> EvalRun:
    """Answer every question (by generation, or by ranking ``choices``, ``rank_k`` of them in full) and
    score the answers.

    Each image is encoded once for all of its questions.
    """
    _need(blip, "vqa")
    if not records:
        raise DataError("no questions to answer")
    started = time.monotonic()
    batch_size = batch_size or blip.batch_size
    cands = list(dict.fromkeys(answer_text(c) for c in choices if answer_text(c))) if choices else None
    if choices is not None and not cands:
        raise DataError("the answer choices are empty")
    rank_k = defaults.VQA_RANK_K if rank_k is None else rank_k
    question_batch = max(1, _RANK_ROWS // min(len(cands), rank_k)) if cands else batch_size
    by_image: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_image.setdefault(r.image, []).append(i)
    images = list(by_image)
    results: list[Any] = [None] * len(records)
    with _bar(progress, len(records), "vqa", unit="q") as advance:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            feats = blip.encode_images(chunk, batch_size=batch_size)
            where = [(local, i) for local, image in enumerate(chunk) for i in by_image[image]]
            selected = feats.select([local for local, _ in where])
            answers = blip.ask(
                selected,
                [records[i].question for _, i in where],
                choices=cands,
                rank_k=rank_k,
                settings=settings,
                batch_size=question_batch,
            )
            for (_, i), answer in zip(where, answers, strict=True):
                results[i] = answer
            advance(len(where))
    # question ids may repeat across files: score by position
    references = [
        replace(
            r, question_id=str(i), answers=[answer_text(a) for a in r.answers], answer=answer_text(r.answer)
        )
        for i, r in enumerate(records)
    ]
    predictions, rows = {}, []
    for i, (record, ref, result) in enumerate(zip(records, references, results, strict=True)):
        predicted = answer_text(result.answer or "")
        row: dict[str, Any] = {
            "question_id": record.question_id,
            "image": record.image,
            "question": record.question,
            "answer": predicted,
            "confidence": result.confidence,
            "truth": record.answer,
            "answers": record.answers,
        }
        if not result.ok:
            row.update(error=str(result.error), error_code=result.error_code)
        else:
            predictions[str(i)] = predicted
            if ref.answers or ref.answer:
                row["accuracy"] = vqa_accuracy(predicted, ref.answers, answer=ref.answer)
        rows.append(row)
    if not predictions:
        raise DataError(f"every one of the {len(records)} questions failed; nothing to score")
    metrics = vqa_scores(predictions, references)
    metrics["n_failed"] = len(records) - len(predictions)
    metrics["mode"] = "generate"
    if cands:
        pruned = f", the {rank_k} with the likeliest first token in full" if len(cands) > rank_k else ""
        metrics["mode"] = f"rank over {len(cands)} answers{pruned}"
    metrics["notes"].append("answers compared with '_' read as a space (DAQUAR's garbage_bin = garbage bin)")
    return EvalRun("vqa", metrics, rows, time.monotonic() - started)


def evaluate_vqa(blip: Blip, records: Sequence[VQARecord], **options: Any) -> dict[str, Any]:
    """VQA metrics (``accuracy``, ``WUPS@0.9``, ``WUPS@0.0``, 0-100) of ``blip`` on ``records``; options as
    :func:`vqa_eval` (``choices`` to rank candidate answers instead of generating, ``settings``,
    ``batch_size``, ``progress``)."""
    return vqa_eval(blip, records, **options).metrics


# --- retrieval -----------------------------------------------------------------------------------


def _itm_scores(
    blip: Blip,
    feats: ImageFeatures,
    pairs: list[tuple[int, int]],
    texts: Sequence[str],
    batch_size: int,
    advance: Callable[[int], Any],
) -> dict[tuple[int, int], float]:
    """ITM probability of each (image row, text index) pair, reusing the images' features."""
    out: dict[tuple[int, int], float] = {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        selected = feats.select([image for image, _ in chunk])
        probs = blip.match_pairs(selected, [texts[t] for _, t in chunk], batch_size=batch_size)
        out.update(zip(chunk, probs.tolist(), strict=True))
        advance(len(chunk))
    return out


def _directional(i2t_matrix: np.ndarray, t2i_matrix: np.ndarray, truth: Sequence[int]) -> dict[str, float]:
    """Image->text recall from one matrix, text->image from another (each re-ranked its own way)."""
    i2t = {k: v for k, v in retrieval_scores(i2t_matrix, truth).items() if k.startswith("i2t_")}
    t2i = {k: v for k, v in retrieval_scores(t2i_matrix, truth).items() if k.startswith("t2i_")}
    scores: dict[str, float] = {**i2t, **t2i}
    scores["r_mean"] = float(np.mean([v for k, v in scores.items() if "_R@" in k]))
    return scores


def retrieval_eval(
    blip: Blip,
    records: Sequence[CaptionRecord],
    *,
    rerank_k: int = defaults.RERANK_K,
    batch_size: int | None = None,
    progress: bool = False,
) -> EvalRun:
    """Image->text and text->image retrieval over every image and every caption of ``records``.

    Metrics: ``itc`` (cosine similarity ranking), and with ``rerank_k > 0`` ``itm`` (the top-k
    candidates of each query re-ordered by ITM probability, as BLIP evaluates) and ``itc+itm`` (ITM
    probability plus ITC similarity); ``r1_mean`` is the mean of the two R@1 of the last of those.
    Images that fail to load are left out with their captions (``n_failed``).
    """
    _need(blip, "itc")
    if rerank_k > 0:
        _need(blip, "itm")
    if not records:
        raise DataError("no images to retrieve")
    started = time.monotonic()
    batch_size = batch_size or blip.batch_size
    with _bar(progress, len(records), "encode images") as advance:
        all_feats = blip.encode_images([r.image for r in records], batch_size=batch_size, progress=advance)
    ok = [i for i in range(len(records)) if all_feats.row_of(i) is not None]
    if not ok:
        raise DataError(f"every one of the {len(records)} images failed to load; nothing to retrieve")
    feats = all_feats.select(ok)
    kept = [records[i] for i in ok]
    texts = [c for r in kept for c in r.captions]
    truth = [j for j, r in enumerate(kept) for _ in r.captions]
    if not texts:
        raise DataError("the images have no captions to retrieve")
    image_vecs = blip.embed_images(feats, batch_size=batch_size)
    text_vecs = blip.embed_texts(texts, batch_size=batch_size)
    sim = image_vecs.astype(np.float64) @ text_vecs.astype(np.float64).T
    metrics: dict[str, Any] = {"itc": retrieval_scores(sim, truth)}
    final_i2t = final_t2i = sim
    if rerank_k > 0:
        k_texts, k_images = min(rerank_k, len(texts)), min(rerank_k, len(kept))
        top_texts = np.argsort(-sim, axis=1, kind="stable")[:, :k_texts]
        top_images = np.argsort(-sim, axis=0, kind="stable")[:k_images, :]
        pairs = {(i, int(t)) for i in range(len(kept)) for t in top_texts[i]}
        pairs |= {(int(i), t) for t in range(len(texts)) for i in top_images[:, t]}
        ordered = sorted(pairs)
        with _bar(progress, len(ordered), "ITM re-rank", unit="pair") as advance:
            itm = _itm_scores(blip, feats, ordered, texts, batch_size, advance)
        i2t_itm, t2i_itm = sim + _OUTSIDE_TOP_K, sim + _OUTSIDE_TOP_K
        i2t_both, t2i_both = i2t_itm.copy(), t2i_itm.copy()
        for i in range(len(kept)):
            for t in top_texts[i]:
                i2t_itm[i, t] = itm[(i, int(t))]
                i2t_both[i, t] = itm[(i, int(t))] + sim[i, t]
        for t in range(len(texts)):
            for i in top_images[:, t]:
                t2i_itm[i, t] = itm[(int(i), t)]
                t2i_both[i, t] = itm[(int(i), t)] + sim[i, t]
        metrics["itm"] = _directional(i2t_itm, t2i_itm, truth)
        metrics["itc+itm"] = _directional(i2t_both, t2i_both, truth)
        final_i2t, final_t2i = i2t_itm, t2i_itm
    last = metrics["itm"] if rerank_k > 0 else metrics["itc"]
    metrics["r1_mean"] = (last["i2t_R@1"] + last["t2i_R@1"]) / 2
    metrics.update(
        rerank_k=rerank_k, n_images=len(kept), n_texts=len(texts), n_failed=len(records) - len(kept)
    )
    rows = _retrieval_rows(kept, texts, truth, sim, final_i2t, final_t2i, rerank_k > 0)
    return EvalRun("retrieval", metrics, rows, time.monotonic() - started)


def _retrieval_rows(
    records: Sequence[CaptionRecord],
    texts: list[str],
    truth: list[int],
    sim: np.ndarray,
    i2t: np.ndarray,
    t2i: np.ndarray,
    reranked: bool,
) -> list[dict[str, Any]]:
    itc_i2t, itc_t2i = image_to_text_ranks(sim, truth), text_to_image_ranks(sim, truth)
    final_i2t, final_t2i = image_to_text_ranks(i2t, truth), text_to_image_ranks(t2i, truth)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        row = {
            "direction": "i2t",
            "image": record.image,
            "image_id": record.image_id,
            "itc_rank": int(itc_i2t[i]),
            "top_text": texts[int(np.argmax(i2t[i]))],
        }
        if reranked:
            row["itm_rank"] = int(final_i2t[i])
        rows.append(row)
    for t, text in enumerate(texts):
        row = {
            "direction": "t2i",
            "text": text,
            "image": records[truth[t]].image,
            "itc_rank": int(itc_t2i[t]),
            "top_image": records[int(np.argmax(t2i[:, t]))].image,
        }
        if reranked:
            row["itm_rank"] = int(final_t2i[t])
        rows.append(row)
    return rows


def evaluate_retrieval(blip: Blip, records: Sequence[CaptionRecord], **options: Any) -> dict[str, Any]:
    """Retrieval metrics of ``blip`` on ``records`` (nested ``itc``/``itm``/``itc+itm`` dicts of
    ``i2t_R@1``.. ``t2i_medr``, plus ``r1_mean``); options as :func:`retrieval_eval` (``rerank_k``,
    ``batch_size``, ``progress``)."""
    return retrieval_eval(blip, records, **options).metrics


# --- dispatch ------------------------------------------------------------------------------------


def run_eval(task: str, blip: Blip, records: Sequence[Any], **options: Any) -> EvalRun:
    """Run the ``task`` (caption, vqa or retrieval) evaluation."""
    runners = {"caption": caption_eval, "vqa": vqa_eval, "retrieval": retrieval_eval}
    if task not in runners:
        raise ValueError(f"task must be one of {EVAL_TASKS}, not {task!r}")
    return runners[task](blip, records, **options)


def primary_metric(task: str) -> str:
    """The one number that ranks checkpoints for a task: CIDEr, accuracy or mean R@1."""
    return {"caption": "CIDEr", "vqa": "accuracy", "retrieval": "r1_mean"}[task]


def flat_numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric metrics as one flat dict (``itm.i2t_R@1``); None, text and notes left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


__all__ = [
    "EVAL_TASKS",
    "EvalRun",
    "answer_text",
    "answer_vocabulary",
    "caption_eval",
    "evaluate_captions",
    "evaluate_retrieval",
    "evaluate_vqa",
    "flat_numbers",
    "primary_metric",
    "retrieval_eval",
    "run_eval",
    "vqa_eval",
]

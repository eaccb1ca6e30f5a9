"""The :class:`Blip` class: one loaded checkpoint and every task it can run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import torch

from assistant.vision import defaults
from assistant.vision.errors import VisionError
from assistant.vision.io import ImageInput, expand_sources
from assistant.vision.results import AnswerResult, CaptionResult, DescriptionResult, MatchResult
from assistant.vision.runtime import interrupt
from assistant.vision.runtime.checkpoint import Checkpoint, load_checkpoint
from assistant.vision.runtime.encoding import ImageFeatures, batched, check_text, encode_images
from assistant.vision.runtime.resolve import resolve_checkpoint
from assistant.vision.tasks import ask as ask_task
from assistant.vision.tasks import caption as caption_task
from assistant.vision.tasks import colours as colours_task
from assistant.vision.tasks import embed as embed_task
from assistant.vision.tasks import match as match_task
from assistant.vision.tasks import signals as signals_task
from assistant.vision.tasks.generation import GenerationSettings

Images = ImageInput | Sequence[ImageInput] | ImageFeatures


def load(
    name_or_path: str | os.PathLike[str] = defaults.DEFAULT_MODEL,
    task: str | None = None,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    threads: int | None = None,
    fast: bool | None = None,
) -> Blip:
    """Load a BLIP checkpoint: ``builtin``, an alias (``base``, ``large``, ``vqa``, ``itm``...), a hub id
    such as ``Salesforce/blip-image-captioning-base``, or a folder saved by ``save_pretrained``.

    ``task`` (``caption``, ``vqa``, ``itm``, ``itc``), if given, is checked against the checkpoint's heads
    so that a wrong checkpoint fails now rather than at the first call.

    ``fast=True`` loads the CPU fast path (:mod:`assistant.vision.runtime.fast`): bfloat16/int8 matmuls
    chosen for
    this CPU, fused attention, image keys/values computed once; outputs match to low-precision rounding.
    ``fast=False`` is transformers' own float32 computation, token for token. The default (``None``) is
    ``BLIP_ASSISTANT_FAST`` when set, else the fast path where the benchmark measured it to pay at the
    same quality (CPUs with bfloat16 units; elsewhere its int8 plan, where torch's int8 kernels run) and
    float32 otherwise; ``blip.checkpoint.extras["fast"]`` says which plan runs.
    """
    from assistant.vision.runtime.checkpoint import TASK_ALIASES

    if threads:
        torch.set_num_threads(threads)
    name = str(name_or_path)
    ckpt = load_checkpoint(name, resolve_checkpoint(name), device=device, dtype=dtype, fast=fast)
    if task is not None:
        if task not in TASK_ALIASES:
            raise ValueError(f"unknown task {task!r}; choose from {sorted(set(TASK_ALIASES))}")
        ckpt.require(TASK_ALIASES[task])
    return Blip(ckpt)


# (keep, context): a caption ``keep`` refuses is decoded again inside ``context()``
Recaption = tuple[Callable[[str], bool], Callable[[], AbstractContextManager[Any]]]


def _text_errors(texts: Sequence[Any], what: str) -> dict[int, VisionError]:
    """The texts that :func:`~assistant.vision.runtime.encoding.check_text` refuses, by position, with why."""
    errors: dict[int, VisionError] = {}
    for i, text in enumerate(texts):
        try:
            check_text(text, what)
        except VisionError as exc:
            errors[i] = exc
    return errors


def _as_list(images: Images) -> list[ImageInput]:
    if isinstance(images, str | bytes | os.PathLike) or not isinstance(images, Iterable):
        return [images]  # type: ignore[list-item]
    if isinstance(images, np.ndarray):
        return [images]
    return list(images)


class Blip:
    """A BLIP model ready to caption, answer, match and embed.

    Every method takes images as paths, URLs, bytes, PIL images, numpy arrays, a list of those, or the
    :class:`ImageFeatures` of an earlier :meth:`encode_images` call (so one vision pass can feed several
    tasks). Methods that return one record per image never raise for a bad image: the record carries the
    error instead.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.batch_size = defaults.BATCH_SIZE
        vision = getattr(checkpoint.model, "vision_model", None)
        layers = getattr(getattr(vision, "encoder", None), "layers", None)
        if layers is not None:  # a Salesforce ViT: its layers are most of a description's time
            interrupt.watch_layers(layers)

    def __repr__(self) -> str:
        c = self.checkpoint
        return f"Blip({c.name!r}, tasks={sorted(c.tasks)}, device={c.device}, dtype={c.dtype})"

    @property
    def tasks(self) -> frozenset[str]:
        return self.checkpoint.tasks

    # --- vision -------------------------------------------------------------------------------
    def encode_images(
        self,
        images: Images,
        *,
        batch_size: int | None = None,
        progress: Any = None,
            max_pixels: int = defaults.MAX_IMAGE_PIXELS,
    ) -> ImageFeatures:
        """Run the vision encoder once over ``images`` (folders and globs are expanded)."""
        if isinstance(images, ImageFeatures):
            return images
        sources = expand_sources(_as_list(images))
        return encode_images(
            self.checkpoint,
            sources,
            batch_size=batch_size or self.batch_size,
            max_pixels=max_pixels,
            on_batch=progress,
        )

    # --- caption ------------------------------------------------------------------------------
    def caption(
        self,
        images: Images,
        *,
        prompt: str | None = None,
        settings: GenerationSettings | None = None,
        batch_size: int | None = None,
        progress: Any = None,
        recaption: Recaption | None = None,
        **generation: Any,
    ) -> list[CaptionResult]:
        """Caption each image. ``generation`` keywords are :class:`GenerationSettings` fields
        (``decoding="beam"|"greedy"|"nucleus"``, ``num_beams``, ``max_new_tokens``, ``top_p``...);
        ``recaption`` as for :meth:`describe_signals`."""
        if settings is not None and generation:  # one would be ignored without a word
            raise TypeError(f"give settings or generation keywords ({', '.join(generation)}), not both")
        settings = settings or GenerationSettings(**generation)
        batch_size = batch_size or self.batch_size
        results: list[CaptionResult] = []
        for feats in self._feature_batches(images, batch_size, progress):
            out = [CaptionResult(image=label) for label in feats.labels]
            for i, exc in feats.errors.items():
                out[i].fail(exc)
            if feats.rows:
                try:
                    captions = self._caption_embeds(feats.embeds, settings, prompt, recaption)
                except VisionError as exc:
                    captions = None
                    for i in feats.rows:
                        out[i].fail(exc)
                for i, (text, conf) in zip(feats.rows, captions or [], strict=False):
                    out[i].caption, out[i].confidence = text, conf
            results.extend(out)
        return results

    # --- honest descriptions (issue #22) -----------------------------------------------------------
    def describe_signals(
        self,
        images: Images,
        *,
        settings: GenerationSettings | None = None,
        itm_model: Blip | None = None,
        top_k: int = signals_task.TOP_LABELS,
        ground: bool = False,
        calibration: Any = None,
        batch_size: int | None = None,
        progress: Any = None,
        recaption: Recaption | None = None,
        **generation: Any,
    ) -> list[DescriptionResult]:
        """Caption each image and say how far to trust it: one vision pass gives the caption and its token
        confidence, the ITM probability of the caption, and the backbone classifier's ``top_k`` plain
        labels; :mod:`assistant.honesty` makes of them a calibrated confidence, a level and a sentence.

        ITM comes from this checkpoint's head, else from ``itm_model`` (a Salesforce ITM checkpoint beside
        a captioning one: its own vision pass), else it is left out and the ``no_itm`` calibration is
        used. With ``ground``, an image the caption is unsure of, whose classifier label is likely, is
        captioned again starting from that label ("a cup of coffee ..."), and that caption competes too
        (:func:`assistant.honesty.best_caption`). It is off by default: on the held-out sets it changed
        what is said by less than 0.1 point of hallucination and cost one more decoding per unsure image
        (``tests/benchmarks/hallucination.py``, ``describe_speed.py``). ``generation`` keywords are
        :class:`GenerationSettings` fields, as for :meth:`caption`. ``recaption`` = ``(keep, context)``: a
        caption that ``keep`` refuses is decoded again inside ``context()`` (other weights, the same vision
        features), before anything else is computed from it (a personal model's gate:
        :mod:`assistant.personal.gate`).
        """
        from assistant import honesty

        if settings is not None and generation:
            raise TypeError(f"give settings or generation keywords ({', '.join(generation)}), not both")
        settings = settings or GenerationSettings(**generation)
        batch_size = batch_size or self.batch_size
        has_itm = match_task.ITM in self.tasks
        profile = honesty.FULL if has_itm or itm_model is not None else honesty.NO_ITM
        cal = calibration or honesty.load_calibration(profile)
        classify = signals_task.image_classifier(self.checkpoint, top_k)
        results: list[DescriptionResult] = []
        for feats in self._feature_batches(images, batch_size, progress, classify=classify):
            out = [DescriptionResult(image=label) for label in feats.labels]
            for i, exc in feats.errors.items():
                out[i].fail(exc)
            if feats.rows:
                try:
                    self._fill_signals(feats, out, settings, itm_model, images, cal, ground, recaption)
                except VisionError as exc:
                    for i in feats.rows:
                        out[i].fail(exc)
            results.extend(out)
        return results

    def _caption_embeds(self, embeds: torch.Tensor, settings: GenerationSettings, prompt: str | None = None,
                        recaption: Recaption | None = None) -> list[tuple[str, float]]:
        """(caption, confidence) per row of ``embeds``; with ``recaption`` = ``(keep, context)``, a caption
        that ``keep`` refuses is decoded again inside ``context()`` (other weights, the same features)."""
        captions = caption_task.caption_embeds(self.checkpoint, embeds, settings, prompt)
        if recaption is not None:
            keep, context = recaption
            again = [k for k, (text, _) in enumerate(captions) if not keep(text)]
            if again:
                with context():
                    redone = caption_task.caption_embeds(self.checkpoint, embeds[again], settings, prompt)
                for k, caption in zip(again, redone, strict=True):
                    captions[k] = caption
        return captions

    def _itm_of(self, feats: ImageFeatures, rows: list[int], texts: list[str], itm_model: Blip | None,
                images: Images) -> list[float | None]:
        if match_task.ITM in self.tasks:
            return list(match_task.itm_scores(self.checkpoint, feats.embeds[[feats.row_of(i) for i in rows]],
                                              texts))
        if itm_model is None or isinstance(images, ImageFeatures):
            return [None] * len(rows)
        other = itm_model.encode_images([feats.labels[i] for i in rows])
        return [None if s != s else float(s) for s in itm_model.match_pairs(other, texts)]

    def _fill_signals(self, feats: ImageFeatures, out: list[DescriptionResult], settings: GenerationSettings,
                      itm_model: Blip | None, images: Images, cal: Any, ground: bool,
                      recaption: Recaption | None = None) -> None:
        from assistant import honesty

        rows = list(feats.rows)
        captions = self._caption_embeds(feats.embeds, settings, recaption=recaption)
        texts = [text for text, _ in captions]
        itms = self._itm_of(feats, rows, texts, itm_model, images)
        for i, (text, conf), itm in zip(rows, captions, itms, strict=True):
            r = out[i]
            r.caption, r.token_confidence, r.itm = text, conf, itm
            r.labels = feats.objects.get(i, [])
            r.confidence = honesty.calibrated_confidence(text, conf, itm, r.labels, cal)
        for i in rows:
            r = out[i]
            alternatives = self._grounded(feats, i, r, settings, itm_model, images, cal) if ground else []
            text, r.confidence, r.source = honesty.best_caption(
                r.caption or "", r.token_confidence, r.itm, r.labels or [], cal, alternatives
            )
            r.grounded = r.source.startswith("grounded")
            r.spoken_caption = text
            r.sentence, r.level = honesty.phrase(text, r.confidence, r.labels or [], cal)

    def _grounded(self, feats: ImageFeatures, i: int, r: DescriptionResult, settings: GenerationSettings,
                  itm_model: Blip | None, images: Images, cal: Any) -> list[tuple[str, float, float | None]]:
        """Constrained decoding for the unsure: the caption again, starting with the classifier's likeliest
        label ("a cup of coffee ..."), when that label is likely enough to be offered as a guess."""
        if r.confidence is None or r.confidence >= cal.probably or not r.labels:
            return []
        label, p = r.labels[0]
        if p < cal.guess:
            return []
        embeds = feats.embeds[[feats.row_of(i)]]
        ((text, conf),) = caption_task.caption_embeds(self.checkpoint, embeds, settings, prompt=label)
        itm = self._itm_of(feats, [i], [text], itm_model, images)[0]
        return [(text, conf, itm)]

    def _feature_batches(self, images: Images, batch_size: int, progress: Any, classify: Any = None):
        """Features batch by batch, so that big folders stream instead of piling up in memory."""
        if isinstance(images, ImageFeatures):
            for start in range(0, len(images), batch_size):
                yield images.select(range(start, min(start + batch_size, len(images))))
            return
        sources = expand_sources(_as_list(images))
        for _, chunk in batched(sources, batch_size):
            yield encode_images(self.checkpoint, chunk, batch_size=batch_size, on_batch=progress,
                                classify=classify)

    # --- ask ----------------------------------------------------------------------------------
    def ask(
        self,
        images: Images,
        questions: str | Sequence[str],
        *,
        choices: Sequence[str] | None = None,
        rank_k: int | None = None,
        settings: GenerationSettings | None = None,
        batch_size: int | None = None,
        progress: Any = None,
    ) -> list[AnswerResult]:
        """Answer questions about images: one question for every image, one per image, or several about
        one image. One result per (image, question) pair, in that order.

        With ``choices``, the candidates are ranked (``scores``) and the best one is the answer: the
        ``rank_k`` (default :data:`~assistant.vision.defaults.VQA_RANK_K`) whose first token is likeliest are
        scored in full, as BLIP does (:func:`assistant.vision.tasks.ask.rank_answers`).
        """
        if choices is not None and not choices:
            raise ValueError("choices is empty: give candidate answers, or None to generate an answer")
        batch_size = batch_size or self.batch_size
        feats = self.encode_images(images, batch_size=batch_size, progress=progress)
        qs = [questions] * len(feats) if isinstance(questions, str) else list(questions)
        if len(feats) == 1:
            image_of = [0] * len(qs)  # several questions about one image
        elif len(qs) == len(feats):
            image_of = list(range(len(qs)))
        else:
            raise ValueError(f"{len(qs)} questions for {len(feats)} images: give one, one per image, or "
                             "ask about one image")
        out = [AnswerResult(image=feats.labels[image_of[k]], question=q) for k, q in enumerate(qs)]
        # a bad image or question fails its own results only, not the batch they would have shared
        bad_qs = _text_errors(qs, "question")
        for k, i in enumerate(image_of):
            if i in feats.errors:
                out[k].fail(feats.errors[i])
            elif k in bad_qs:
                out[k].fail(bad_qs[k])
        good = [k for k, i in enumerate(image_of) if i not in feats.errors and k not in bad_qs]
        for _, rows in batched(good, batch_size):
            embeds = feats.embeds[[feats.row_of(image_of[k]) for k in rows]]
            batch_qs = [qs[k] for k in rows]
            try:
                if choices:
                    for i, scores in zip(
                        rows, ask_task.rank_answers(self.checkpoint, embeds, batch_qs, choices, rank_k),
                        strict=True,
                    ):
                        best = max(scores, key=scores.__getitem__)
                        out[i].answer, out[i].confidence, out[i].scores = best, scores[best], scores
                        if set(scores) == {"yes", "no"}:
                            self._check_colour(out[i], feats, image_of[i])
                        else:
                            self._drop_absent_colours(out[i], feats, image_of[i])
                else:
                    # what the pixels settle anyway is not written first, only to be thrown away
                    settled = [i for i in rows if self._answer_from_pixels(out[i], feats, image_of[i])]
                    left = [k for k, i in enumerate(rows) if i not in settled]
                    if left:
                        answers = ask_task.answer(self.checkpoint, embeds[left], [batch_qs[k] for k in left],
                                                  settings)
                        for k, (text, conf) in zip(left, answers, strict=True):
                            out[rows[k]].answer, out[rows[k]].confidence = text, conf
                            self._check_colour(out[rows[k]], feats, image_of[rows[k]])
            except VisionError as exc:
                for i in rows:
                    out[i].fail(exc)
        return out

    def _check_colour(self, result: AnswerResult, feats: ImageFeatures, image: int) -> None:
        """Answers about colours, checked against the picture's pixels
        (:mod:`assistant.vision.tasks.colours`): a one-colour answer to a colour question, where the
        question looks; a yes/no about something of a colour that no pixel has."""
        pixels = feats.thumbnails.get(image)
        if pixels is None:
            return
        answer = (result.answer or "").strip().lower()
        presence = colours_task.colour_presence(result.question) if answer in ("yes", "no") else None
        if presence is not None:
            if _settle_absent(result, presence, pixels):
                return
            colour, negated = presence
            thing = colours_task.thing_colour_question(result.question)
            if thing is None or not colours_task.weighs_regions(self.checkpoint):
                return
            found = self._grounded_colour(feats, image, thing, pixels)
            if found is not None and found[0] == colour and found[1] >= colours_task.SEEN_CONFIDENCE:
                _settle(result, "no" if negated else "yes", found[1])
            return
        colour = colours_task.colour_word(answer)
        if not colours_task.is_colour_question(result.question) or colour is None:
            return
        weighs = colours_task.weighs_regions(self.checkpoint)
        if not weighs and colour in colours_task.present(pixels):
            return
        found = self._grounded_colour(feats, image, result.question, pixels,
                                      weight=colours_task.WEIGHT if weighs else 0.0)
        if found is not None:
            result.answer, result.confidence = found[0], found[1]

    def _answer_from_pixels(self, result: AnswerResult, feats: ImageFeatures, image: int) -> bool:
        """Answer, before any answer is written, what :meth:`_check_colour` would settle whatever the
        model wrote: a question asking for a colour ("what color is the shirt?"), by the colours' grounded
        ranking (built-in model); "is there a red car?" where no pixel is red. False for any other
        question, or when the picture gives no region to look at."""
        pixels = feats.thumbnails.get(image)
        if pixels is None:
            return False
        presence = colours_task.colour_presence(result.question)
        if presence is not None:
            return _settle_absent(result, presence, pixels)
        asks = colours_task.asks_for_colour(result.question)
        if not asks or not colours_task.weighs_regions(self.checkpoint):
            return False
        found = self._grounded_colour(feats, image, result.question, pixels)
        if found is None:
            return False
        result.answer, result.confidence = found[0], found[1]
        return True

    def _grounded_colour(self, feats: ImageFeatures, image: int, question: str, pixels: np.ndarray,
                         weight: float = colours_task.WEIGHT) -> tuple[str, float, dict[str, float]] | None:
        row = feats.row_of(image)
        return colours_task.grounded_colour(self.checkpoint, feats.embeds[row : row + 1], question, pixels,
                                            weight=weight)

    def _drop_absent_colours(self, result: AnswerResult, feats: ImageFeatures, image: int) -> None:
        """A choice between colours ("is it red or blue?"): a colour no pixel of the picture has is not
        the answer while one offered colour is there."""
        pixels = feats.thumbnails.get(image)
        scores = result.scores or {}
        if pixels is None or len(scores) < 2 or any(colours_task.colour_word(c) is None for c in scores):
            return
        there = colours_task.present(pixels)
        present = {c: p for c, p in scores.items() if colours_task.colour_word(c) in there}
        if not present or len(present) == len(scores):
            return
        total = sum(present.values()) or 1.0
        result.scores = {c: present.get(c, 0.0) / total for c in scores}
        best = max(result.scores, key=result.scores.__getitem__)
        result.answer, result.confidence = best, result.scores[best]

    # --- match --------------------------------------------------------------------------------
    def match(
        self, images: Images, texts: str | Sequence[str], *, batch_size: int | None = None
    ) -> list[MatchResult]:
        """ITM probability that each text describes each image (every image x every text)."""
        feats = self.encode_images(images, batch_size=batch_size)
        texts = [texts] if isinstance(texts, str) else list(texts)
        bad_texts = _text_errors(texts, "text")
        out: list[MatchResult] = []
        pairs: list[tuple[int, int, MatchResult]] = []
        for i, label in enumerate(feats.labels):
            for j, t in enumerate(texts):
                result = MatchResult(image=label, text=t)
                if i in feats.errors:
                    result.fail(feats.errors[i])
                elif j in bad_texts:
                    result.fail(bad_texts[j])
                else:
                    pairs.append((feats.row_of(i), len(out), result))  # type: ignore[arg-type]
                out.append(result)
        bs = batch_size or self.batch_size
        for _, chunk in batched(pairs, bs):
            embeds = feats.embeds[[row for row, _, _ in chunk]]
            try:
                scores = match_task.itm_scores(self.checkpoint, embeds, [r.text for _, _, r in chunk])
            except VisionError as exc:
                for _, _, r in chunk:
                    r.fail(exc)
                continue
            for (_, _, r), s in zip(chunk, scores, strict=True):
                r.score = s
        return out

    def match_pairs(
        self, features: ImageFeatures, texts: Sequence[str], *, batch_size: int | None = None
    ) -> np.ndarray:
        """ITM probability for each (features[i], texts[i]) pair; NaN where the image failed."""
        if len(features) != len(texts):
            raise ValueError("match_pairs needs one text per image")
        scores = np.full(len(texts), np.nan, dtype=np.float32)
        ok = [i for i in range(len(texts)) if features.row_of(i) is not None]
        for _, chunk in batched(ok, batch_size or self.batch_size):
            embeds = features.embeds[[features.row_of(i) for i in chunk]]
            scores[list(chunk)] = match_task.itm_scores(self.checkpoint, embeds, [texts[i] for i in chunk])
        return scores

    # --- embed --------------------------------------------------------------------------------
    def embed_images(
        self, images: Images, *, batch_size: int | None = None, progress: Any = None
    ) -> np.ndarray:
        """L2-normalised ITC vectors, one row per image (NaN rows for images that failed to load;
        :meth:`encode_images` tells which and why)."""
        feats = self.encode_images(images, batch_size=batch_size, progress=progress)
        vecs = embed_task.image_vectors(self.checkpoint, feats.embeds) if feats.rows else None
        dim = vecs.shape[1] if vecs is not None else self.embedding_dim
        out = np.full((len(feats), dim), np.nan, dtype=np.float32)
        if vecs is not None:
            out[feats.rows] = vecs.cpu().numpy()
        return out

    def embed_texts(self, texts: str | Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """L2-normalised ITC vectors, one row per text."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        chunks = [
            embed_task.text_vectors(self.checkpoint, chunk).cpu().numpy()
            for _, chunk in batched(texts, batch_size or 64)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embedding_dim), np.float32)

    @property
    def embedding_dim(self) -> int:
        return int(self.checkpoint.model.vision_proj.out_features)

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix between two sets of vectors."""
        return embed_task.similarity(a, b)

    @contextmanager
    def threads(self, n: int):
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield self
        finally:
            torch.set_num_threads(before)


def _settle_absent(result: AnswerResult, presence: tuple[str, bool], pixels: np.ndarray) -> bool:
    """"is there a red car?" (``presence``: the colour, negated) where no pixel is red: "no" ("yes" when
    negated), whatever the model said. False when the picture has the colour."""
    colour, negated = presence
    if colour in colours_task.present(pixels):
        return False
    _settle(result, "yes" if negated else "no", colours_task.ABSENT_CONFIDENCE)
    return True


def _settle(result: AnswerResult, said: str, sure: float) -> None:
    """A yes/no the pixels settled: the answer ``said``, at least ``sure`` (more when the model agreed)."""
    answer = (result.answer or "").strip().lower()
    agreed = said == answer and result.confidence is not None
    result.answer, result.confidence = said, max(sure, result.confidence) if agreed else sure
    if result.scores is not None:
        other = "no" if said == "yes" else "yes"
        result.scores = {said: result.confidence, other: 1.0 - result.confidence}


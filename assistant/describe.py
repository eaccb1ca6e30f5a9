"""Describing an image: the one function behind the app's hotkeys and ``blip-assistant describe``.

Qt-free. The model is loaded on first use (or ahead of time by :meth:`Describer.load`) and kept, so the
second description costs only the model's own time.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from assistant.vision import defaults
from assistant.vision.runtime.interrupt import interruptible  # torch-free

# How each detail level decodes. Brief is greedy: on this project's 2-vCPU machine it took 0.29-0.44 s
# against 0.77 s for beam 3 on the same photo (the first word is what the user waits for); detailed keeps
# the engine's beam search and allows a longer sentence.
DECODING_BY_DETAIL: dict[str, dict[str, Any]] = {
    "brief": {"decoding": "greedy", "max_new_tokens": 20},
    "detailed": {"decoding": "beam", "max_new_tokens": 30},
}


@dataclass
class Description:
    image: str
    caption: str | None = None
    confidence: float | None = None
    text: str | None = None  # what is spoken: the caption as a sentence, hedged as its confidence says
    level: str | None = None  # "sure", "probably" or "unsure" (assistant.honesty)
    error: str | None = None
    error_code: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: ``image``, ``caption``, ``confidence`` and ``text`` always (None where there is
        none: a blank image has a text and no caption), ``error`` and ``error_code`` when it failed."""
        always = ("image", "caption", "confidence", "text")
        return {k: v for k, v in asdict(self).items() if k in always or v is not None}


def sentence(caption: str) -> str:
    """A caption as a spoken sentence: capital first letter, one full stop."""
    caption = caption.strip()
    if not caption:
        return caption
    caption = caption[0].upper() + caption[1:]
    return caption if caption.endswith((".", "!", "?")) else caption + "."


@dataclass
class Answer:
    image: str
    question: str
    answer: str | None = None
    confidence: float | None = None
    text: str | None = None  # what is spoken
    error: str | None = None
    error_code: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        always = ("image", "question", "answer", "confidence", "text")
        return {k: v for k, v in asdict(self).items() if k in always or v is not None}



class Describer:
    """Owns one loaded model. Thread-safe: one description at a time (the model is not re-entrant)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, *, threads: int | None = 1,
                 device: str = "cpu", personal: bool = True) -> None:
        self.model_name, self.threads, self.device = model, threads, device
        self.personal, self.personal_version = personal, None  # personal: apply the user's active version
        self.notices: list[str] = []  # what loading skipped (a damaged personal model), for the user
        self._blip: Any = None
        self._questions: Any = None  # the BLIP question model, for a model that only describes
        self._lock = threading.Lock()
        # role ("describe", or "questions": the model a describing-only one hands questions to) -> (the
        # model, the last image object, its vision features): a follow-up runs only the text side
        self._kept: dict[str, tuple[Any, Any, Any]] = {}

    @property
    def loaded(self) -> bool:
        return self._blip is not None

    @property
    def picture_side(self) -> int | None:
        """The longer side, in pixels, of the pictures the loaded model reads (224 for the built-in model,
        384 for Salesforce BLIP); None before loading."""
        if self._blip is None:
            return None
        size = self._blip.checkpoint.image_processor.size
        return max(int(size["height"]), int(size["width"]))

    def load(self) -> Any:
        """Load the model now (the app does this in the background after its tray is up)."""
        with self._lock:
            if self._blip is None:
                # The user's active personal model (issue #24), merged on top of the float32 weights and
                # then put on the fast path the base model would have run on.
                import torch

                from assistant import vision
                from assistant.personal import versions as personal
                from assistant.vision.runtime.checkpoint import use_fast

                mine = personal.active_for(self.model_name, self._notice) if self.personal else None
                self.device = _resolve_device(self.device)
                self._blip = vision.load(self.model_name, "caption", device=self.device, threads=self.threads,
                                         **({"fast": False} if mine else {}))
                self.personal_version = (personal.apply_active(self._blip, self.model_name, self._notice)
                                         if mine else None)
                if mine and use_fast(None, self.device, torch.float32):
                    from assistant.personal.fast_path import to_fast

                    to_fast(self._blip)
            return self._blip

    def _notice(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)
            print(f"warning: {message}", file=sys.stderr)

    def describe(self, image: Any, label: str | None = None, detail: str = "brief",
                 not_blank: bool = False, should_stop: Callable[[], bool] | None = None) -> Description:
        """Describe one image (a path, bytes, a PIL image or an array). Never raises for a bad image:
        the Description carries the error, in words for the user. ``should_stop``, asked between
        decoding steps, ends the work early with :class:`~assistant.vision.errors.Interrupted`.

        An image with nothing on it (all black, one colour: a screen curtain, a locked screen, a
        protected video) is said to be so, and never goes to the model, which would invent a scene."""
        from assistant.capture.blank import blank_reason
        from assistant.vision.errors import ImageError
        from assistant.vision.io import describe_source, load_image

        label = label or describe_source(image)
        blip = self.load()
        started = time.perf_counter()
        try:
            picture = load_image(image)
        except ImageError as exc:
            return Description(image=label, error=str(exc), error_code=exc.code,
                               seconds=time.perf_counter() - started)
        # ``not_blank``: a capture, checked when it was taken (15-25 ms saved on every key press)
        blank = None if not_blank else blank_reason(picture, subject="The image")
        if blank is not None:
            return Description(image=label, text=blank, seconds=time.perf_counter() - started)
        from assistant.personal.gate import gate_of

        with self._lock, interruptible(should_stop):
            # One vision pass gives the caption, its ITM score and the backbone classifier's labels, and
            # assistant.honesty turns them into a calibrated confidence and words that follow it: a
            # plain statement, "Probably ...", or "I can't tell what this is" rather than a made-up scene.
            # A detailed description also lets an unsure caption compete with one decoded from the
            # classifier's label ("a cup of coffee ..."): one more decoding, only where the user asked
            # for more; a brief one keeps its speed and offers the label as "It might be ...".
            # A personal model speaks where it says one of the user's words; elsewhere the base model
            # describes, from the same features (assistant.personal.gate)
            gate = gate_of(blip)
            result = blip.describe_signals(self._features(image, picture), ground=detail == "detailed",
                                           recaption=gate.recaption if gate else None,
                                           **DECODING_BY_DETAIL[detail])[0]
        out = Description(image=label, seconds=time.perf_counter() - started)
        if not result.ok:
            out.error, out.error_code = result.error, result.error_code
            return out
        out.caption, out.confidence, out.level = result.caption, result.confidence, result.level
        out.text = result.sentence
        return out

    def ask(self, image: Any, question: str, label: str | None = None,
            should_stop: Callable[[], bool] | None = None) -> Answer:
        """Answer one question, as people say it, about one image (:mod:`assistant.conversation`); the
        ``text`` is the answer as it is spoken. Never raises for a bad image or question; ``should_stop``
        as for :meth:`describe`."""
        from assistant.conversation import answer

        with interruptible(should_stop):  # None: nothing is asked
            return answer(self, image, question, label)

    def ask_model(self, image: Any, question: str, choices: list[str] | None = None) -> Any:
        """The model's own answer (an AnswerResult), from the kept features when ``image`` is the last one.
        A captioning-only model (Salesforce BLIP base or large) hands the question to the downloaded BLIP
        question model when there is one (:mod:`assistant.model_store`)."""
        blip = self.load()
        questions = self._question_model(blip)
        with self._lock:
            if questions is not None:
                features = self._features(image, role="questions")
                return questions.ask(features, question, choices=choices)[0]
            features = self._features(image)
            result = blip.ask(features, question, choices=choices)[0]
        if choices and result.ok and result.scores:
            labels = features.objects.get(0, [])
            result = (weigh_presence(result, question, labels) if set(result.scores) == {"yes", "no"}
                      else weigh_choices(result, labels))
        return result

    def _question_model(self, blip: Any) -> Any:
        if "vqa" in blip.tasks:
            return None
        if self._questions is None:
            from assistant import model_store, vision

            if model_store.installed("vqa") is None:
                return None  # blip.ask then says that this model cannot answer questions
            self._questions = vision.load("vqa", "vqa", device=self.device, threads=self.threads)
        return self._questions

    def _features(self, image: Any, picture: Any = None, role: str = "describe") -> Any:
        """``image``'s vision features under the describing model or the question model, kept for the last
        image object (held, so its id is not reused) and the model that computed them (a model loaded
        again, e.g. a new personal version, computes anew)."""
        model = self._questions if role == "questions" else self._blip
        kept = self._kept.get(role)
        if kept is None or kept[0] is not model or kept[1] is not image:
            from assistant.vision.runtime.encoding import encode_images
            from assistant.vision.tasks.signals import image_classifier

            # With the classifier's labels: describe_signals reads them from the features.
            classify = image_classifier(model.checkpoint)
            features = encode_images(model.checkpoint, [image if picture is None else picture],
                                     batch_size=1, classify=classify)
            kept = self._kept[role] = (model, image, features)
        return kept[2]


def weigh_choices(result: Any, labels: list[tuple[str, float]]) -> Any:
    """"Is it a cat or a dog?": the vision backbone's ImageNet classifier knows animals and things far better
    than the decoder, which learnt from Flickr8k's people and dogs (it called the cat in chelsea.jpg a dog,
    0.87). Where the classifier names one of the offered things at least as likely as a spoken guess, its
    evidence and the decoder's count half each; otherwise the decoder's ranking stands."""
    from assistant import honesty

    scores: dict[str, float] = dict(result.scores or {})
    evidence = {choice: _named(labels, choice.lower().split()[-1]) for choice in scores if choice.strip()}
    total = sum(evidence.values())
    if not evidence or max(evidence.values()) < honesty.load_calibration(honesty.FULL).guess:
        return result
    combined = {c: 0.5 * s + 0.5 * evidence.get(c, 0.0) / total for c, s in scores.items()}
    best = max(combined, key=combined.__getitem__)
    result.answer, result.confidence, result.scores = best, combined[best], combined
    return result


# "is there a cat?", "is this a cat", "are there any dogs in the picture", "do you see a cup of coffee"
_PRESENCE = re.compile(r"^(?:(?:is|are) there|is (?:this|that|it)|(?:do|can) you see|does the picture "
                       r"(?:show|contain|have)) (?!not |no )(?:an? |any |some )?(?P<thing>[a-z][a-z ]*?)"
                       r"(?: in the picture| here)?\??$")


def weigh_presence(result: Any, question: str, labels: list[tuple[str, float]]) -> Any:
    """"Is there a cat?" about the picture the assistant just called "It might be a cat": the decoder,
    which learnt from Flickr8k's people and dogs, said "no" (0.84) to it; the classifier named the cat at
    0.96. Where the decoder says "no" and the classifier names the thing asked about at least as likely
    as a spoken guess, its evidence and the decoder's count half each, as for a choice; a "yes", and a "no"
    the classifier does not contest, stand."""
    from assistant import honesty

    found = _PRESENCE.match(question.strip().lower())
    scores: dict[str, float] = dict(result.scores or {})
    if found is None or not scores or result.answer != "no":
        return result
    seen = _named(labels, found.group("thing").split()[-1])
    if seen < honesty.load_calibration(honesty.FULL).guess:
        return result
    combined = {"yes": 0.5 * scores.get("yes", 0.0) + 0.5 * seen,
                "no": 0.5 * scores.get("no", 0.0) + 0.5 * (1.0 - seen)}
    best = max(combined, key=combined.__getitem__)
    result.answer, result.confidence, result.scores = best, combined[best], combined
    return result


def _named(labels: list[tuple[str, float]], word: str) -> float:
    """How likely the classifier thinks the picture shows ``word`` ("cats" or "cat": "a cat", 0.96)."""
    forms = {word, word.removesuffix("s"), word.removesuffix("es")}
    return max((p for label, p in labels if forms & set(label.lower().split())), default=0.0)


def _resolve_device(device: str) -> str:
    """``auto``: an NVIDIA GPU when torch sees one (the "Use the GPU" setting), else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

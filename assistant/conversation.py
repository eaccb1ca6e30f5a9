"""Questions as people say them, and answers as they read aloud. Qt-free; the model runs in the Describer.

"um, what's the colour of this picture's car" is tidied into a question the model was trained on
("what color is the car?"), sorted into a kind (yes/no, a choice, colour, count, "describe it", open), and
the model's answer is turned back into a short sentence ("The car is red.") with its confidence in words
("Probably yes.", "I'm not sure, but I think no.").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

# Confidence bands for spoken answers: the share the model gives its best offered answer (yes/no or a
# choice; the softmax over the candidates). Below SURE it says "probably", below UNSURE "I'm not sure".
SURE, UNSURE = 0.8, 0.6
# The same for answers the model words itself (a colour, a number, what someone does, where): the
# probability of its answer. Such answers are right less often at the same figure, so the bands sit higher:
# on 1,000 questions about Flickr8k val photos (tests/benchmarks/vqa_questions.py --split val), answers at
# 0.9 or more were right 91% of the time, 0.75-0.9 70%, below 0.75 37% (below 0.6, 24%).
OPEN_SURE, OPEN_UNSURE = 0.9, 0.75
# Below this an answer is no better than a guess and is not offered (as descriptions offer a guess from 0.4,
# assistant/honesty.py): on the 3,106 val questions, the 30 answers under 0.4 were right 17% of the time,
# 0.4-0.6 30%. The questions the model was never taught ("who is in the background?") mostly land here.
OPEN_GUESS = 0.4

FILLERS = ("um", "umm", "uh", "uhh", "er", "erm", "hmm", "hm", "ah", "so", "well", "okay", "ok", "oh",
           "hey", "please", "and", "but", "like", "now", "right", "alright", "assistant", "blip")
# Leading politeness that carries no meaning for the model ("can you tell me what colour the car is").
LEADS = (r"(?:can|could|would|will) you (?:please )?(?:tell me|say|let me know)", r"(?:please )?tell me",
         r"i (?:want|would like|'d like) to know", r"i wonder", r"do you know", r"let me know")
CONTRACTIONS = {
    "what's": "what is", "where's": "where is", "who's": "who is", "how's": "how is", "there's": "there is",
    "here's": "here is", "that's": "that is", "it's": "it is", "he's": "he is", "she's": "she is",
    "what're": "what are", "there're": "there are", "they're": "they are", "we're": "we are",
    "you're": "you are", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
    "weren't": "were not", "don't": "do not", "doesn't": "does not", "didn't": "did not",
    "can't": "can not", "cannot": "can not", "couldn't": "could not", "won't": "will not",
    "hasn't": "has not", "haven't": "have not", "i'm": "i am", "what'd": "what did", "how'd": "how did",
    "y'know": "", "gonna": "going to", "wanna": "want to",
}
PICTURE_WORDS = r"(?:picture|image|photo|photograph|pic|screenshot|screen|shot|snapshot)"
AUXILIARIES = ("is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had",
               "will", "would", "should", "am", "may", "might", "must")
# "what is this?", "describe it", "tell me more": a fuller description rather than a one-word answer.
DESCRIBE = re.compile(
    r"^(?:"
    r"what (?:is|are) (?:this|that|it|these|those|here|there|the picture"
    r"|in (?:it|the picture)|on (?:it|the picture))"
    r"|what (?:is|are) (?:going on|happening)(?: here| in (?:it|the picture))?"
    r"|what (?:do|can) (?:you|i) see(?: here| in (?:it|the picture))?"
    r"|what am i (?:looking at|seeing)"
    # "who is in the picture?": the model was never taught to answer "who" (it said "sitting"); the
    # description names who is there, with its own hedging
    r"|who (?:is|are) (?:in (?:it|the picture|there)|there|here|this|that|these|those|it)"
    r"|what does (?:it|the picture|this|that) (?:show|look like)"
    r"|(?:describe|explain|read)(?: it| this| that| the picture| again| more)*(?: in (?:more )?detail)?"
    r"|(?:tell me )?more(?: about (?:it|this|that|the picture))?(?: please)?"
    r"|(?:tell me |say )?(?:more|again)(?: details?)?"
    r"|(?:tell me )?(?:more )?about (?:it|this|that|the picture)"
    r"|(?:more|any more|some more) details?"
    r"|details?"
    r")$")
COLOUR = re.compile(r"^what (?:colou?rs?|color) (?:is|are|was|were) (?P<subject>.+)$"
                    r"|^what is the colou?r of (?P<subject2>.+)$"
                    r"|^what colou?rs? does (?P<subject3>.+) have$")
COUNT = re.compile(r"^how many (?P<things>.+?)"
                   r"(?: (?:are|is|were|was) (?:there|in the picture|here|visible|shown)"
                   r"| (?:can|do) (?:you|i) see"
                   r"| (?:are|is) (?:in|on) (?:it|the picture))*(?: in (?:it|the picture))?$")
DOING = re.compile(r"^what (?P<be>is|are) (?P<subject>.+?) doing$")
WEARING = re.compile(r"^what (?P<be>is|are) (?P<subject>.+?) wearing$")
WHERE = re.compile(r"^where (?P<be>is|are) (?P<subject>.+?)$")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
IRREGULAR_SINGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child",
                      "mice": "mouse", "feet": "foot", "teeth": "tooth", "geese": "goose", "sheep": "sheep",
                      "fish": "fish", "deer": "deer", "dogs": "dog", "persons": "person"}
# "where is the dog?" -> "grass": the place words the model learnt to answer with
# (assistant.datasets.caption_questions.PLACES), said with the preposition a person would use; the rest
# take "in" ("in the water", "in the park").
PLACES_ON = ("beach", "grass", "street", "road", "sand", "mountain", "stage", "sidewalk", "track", "court",
             "trail", "hill")
# Answers to "where" that need no article: "The dog is outside."
BARE_PLACES = ("outside", "inside", "outdoors", "indoors", "home", "here", "there", "upstairs", "downstairs")
# Subjects that are the picture itself: "where is this?" -> "On the beach.", not "This is on the beach."
PICTURE_SUBJECTS = ("this", "that", "it", "the picture", "this place", "that place")
# Said instead of an answer of the wrong kind (see fits) or a guess (OPEN_GUESS).
CANT_TELL = "I can't tell that from this picture."
# Words in -ing that are things, not activities ("a building", "a ring", "clothing").
NOT_GERUNDS = ("building", "clothing", "ceiling", "railing", "string", "spring", "swing", "thing",
               "something", "nothing", "wedding", "evening", "morning", "painting", "drawing", "sibling",
               "king", "ring", "wing", "earring", "earrings", "stocking", "stockings", "legging",
               "leggings", "filling", "icing", "pudding", "stuffing", "frosting", "dining", "living",
               "lighting", "awning", "sling")
PREPOSITIONS = ("in", "on", "at", "by", "near", "under", "behind", "inside", "outside", "next", "beside",
                "above", "below", "over", "across", "along", "through", "into", "onto", "against")


@dataclass(frozen=True)
class Question:
    """A question as heard (``raw``) and as the model gets it (``text``), and the kind of answer it wants."""

    raw: str
    text: str  # lowercase, no fillers, "the picture" for "this photo", contractions expanded, one "?"
    kind: str  # "describe", "yesno", "choice", "colour", "count", "doing", "wearing", "where" or "open"
    choices: tuple[str, ...] = ()  # for "choice": what the model ranks ("cat", "dog")
    spoken_choices: tuple[str, ...] = ()  # the same as the user said them ("a cat", "a dog")
    subject: str = ""  # "the car" in "what colour is the car"
    plural: bool = False


def tidy(raw: str) -> str:
    """The words of a spoken question, without fillers, politeness and punctuation: lowercase, no "?"."""
    text = raw.strip().lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[\"“”]", "", text).replace("…", " ").replace("...", " ")
    text = re.sub(r"[?!.…]+$", "", text).strip()
    text = re.sub(r"\s*[?!]+\s*", " ", text)  # "what? is it red" -> one question
    words = [CONTRACTIONS.get(w, w) for w in re.split(r"\s+", text) if w]
    text = " ".join(w for w in words if w)
    text = re.sub(r"^how many (\w+)'s ", r"how many \1 are ", text)  # "how many people's there"
    # fillers at the start (and "please" at the end), repeatedly: "um, so, okay what is it"
    pattern = r"^(?:(?:" + "|".join(FILLERS) + r")\b[\s,.;:-]*)+"
    while True:
        stripped = re.sub(pattern, "", text).strip(" ,;:-")
        for lead in LEADS:
            stripped = re.sub(rf"^{lead}\b[\s,]*", "", stripped)
        if stripped == text:
            break
        text = stripped
    text = re.sub(r"[\s,]+(?:please|then|now|for me)$", "", text)
    # an embedded question back in question order: "(tell me) if there is a dog" -> "is there a dog",
    # "(tell me) what colour the car is" -> "what colour is the car"
    if m := re.match(r"^(?:if|whether) (.+?) (is|are|was|were|has|have|can) (.+)$", text):
        text = f"{m[2]} {m[1]} {m[3]}"
    elif m := re.match(r"^(what(?: colou?r)?|where|who|how many \w+) (.+) (is|are)$", text):
        text = f"{m[1]} {m[3]} {m[2]}"
    # "isn't it sunny" asks whether it is sunny
    text = re.sub(rf"^({'|'.join(AUXILIARIES)}) not ", r"\1 ", text)
    text = re.sub(rf"\b(?:this|that|the|your|my) {PICTURE_WORDS}\b", "the picture", text)
    text = re.sub(r"\bthe picture's\b", "the", text)
    text = re.sub(r"\b(\w+) (\w+)s colou?r\b", r"\1 \2 colour", text)
    return re.sub(r"\s+", " ", text).strip()


def _split_choices(text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The offered answers of "is it a cat or a dog", "is the car red, blue or green", as (model, spoken)."""
    if " or " not in text:
        return None
    head, _, last = text.rpartition(" or ")
    last = re.sub(rf"\s+(?:{'|'.join(PREPOSITIONS)})\b.*$", "", last).strip()
    if not last or last in ("not", "no", "what", "something", "something else"):
        return None
    first, *others = [p.strip() for p in head.split(",") if p.strip()] or [""]
    words = first.split()
    # the first option is the noun phrase from its article ("a cat"), else one word ("red"); what comes
    # before it is the question ("is it", "is the car")
    articles = [i for i, w in enumerate(words) if w in ("a", "an", "the", "some")]
    starts_with_article = last.split()[0] in ("a", "an", "the", "some")
    cut = articles[-1] if starts_with_article and articles and articles[-1] > 1 else len(words) - 1
    if cut < 2:  # "is red or blue": no subject to ask about
        return None
    spoken = [" ".join(words[cut:]), *others, last]
    model = [re.sub(r"^(?:a|an|the|some)\s+", "", s) for s in spoken]
    if any(not m or m in AUXILIARIES for m in model) or len(set(model)) < 2:
        return None
    return tuple(model), tuple(spoken)


def _subject(text: str) -> str:
    text = re.sub(r"\s+in the picture$", "", text).strip()
    return re.sub(r"^(?:there )", "", text)


def parse(raw: str) -> Question:
    """Sort one spoken question (see the module's doc)."""
    listed = tidy(raw)  # commas kept only to split "red, blue or green"
    text = re.sub(r"\s+", " ", listed.replace(",", " ")).strip()
    if not text or DESCRIBE.match(text):
        return Question(raw, "what is in the picture?", "describe")
    model_text = text + "?"
    first = text.split()[0]
    if first in AUXILIARIES:
        no_or_not = re.sub(r"\s+or not$", "", text)
        if no_or_not != text:
            return Question(raw, no_or_not + "?", "yesno")
        split = _split_choices(listed)
        if split is not None:
            return Question(raw, model_text, "choice", split[0], split[1])
        return Question(raw, model_text, "yesno")
    if m := COLOUR.match(text):
        subject = _subject(m.group("subject") or m.group("subject2") or m.group("subject3"))
        plural = bool(m.group("subject")) and text.split()[2] in ("are", "were")
        # the wording the VQA data uses, whatever the speaker's spelling
        return Question(raw, f"what color {'are' if plural else 'is'} {subject}?", "colour", subject=subject,
                        plural=plural)
    if m := COUNT.match(text):
        things = _subject(m.group("things"))
        return Question(raw, f"how many {things} are there?", "count", subject=things, plural=True)
    for kind, pattern in (("doing", DOING), ("wearing", WEARING), ("where", WHERE)):
        if m := pattern.match(text):
            return Question(raw, model_text, kind, subject=_subject(m.group("subject")),
                            plural=m.group("be") == "are")
    return Question(raw, model_text, "open")


def _cap(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def _sentence(text: str) -> str:
    text = _cap(text)
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _who(subject: str) -> str:
    """The subject as the start of a spoken sentence: "the man" -> "The man", "you" -> "I"."""
    return {"you": "I", "i": "You", "me": "You"}.get(subject, _cap(subject))


def _be(subject: str, plural: bool) -> str:
    if subject in ("i",):
        return "are"
    if subject == "you":
        return "am"
    return "are" if plural or subject in ("they", "we") else "is"


def _number(answer: str) -> int | None:
    words = answer.lower().replace("-", " ").split()
    for w in words:
        if w.isdigit():
            return int(w)
        if w in NUMBER_WORDS:
            return NUMBER_WORDS.index(w)
        if w in ("none", "zero"):
            return 0
    return None


def _singular(noun_phrase: str) -> str:
    words = noun_phrase.split()
    if not words:
        return noun_phrase
    last = words[-1]
    if last in IRREGULAR_SINGULAR:
        last = IRREGULAR_SINGULAR[last]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return " ".join([*words[:-1], last])


def _band(confidence: float | None, sure: float, unsure: float) -> str:
    if confidence is None or confidence >= sure:
        return "sure"
    return "probably" if confidence >= unsure else "unsure"


def hedge(word: str, confidence: float | None, *, negative: str | None = None) -> str:
    """``word`` ("yes", "a dog") with the confidence in words: sure, "Probably ...", "I'm not sure, ..."."""
    band = _band(confidence, SURE, UNSURE)
    if band == "sure":
        return _sentence(word)
    if band == "probably":
        return _sentence("probably " + (negative or word))
    return f"I'm not sure, but I think {word}."


def _unsure(sentence: str) -> str:
    """"The car is red." -> "I'm not sure, but I think the car is red." (a name keeps its capital)."""
    first, _, rest = sentence.partition(" ")
    if first in ("The", "There", "A", "An", "It", "They", "He", "She"):
        sentence = f"{first.lower()} {rest}" if rest else first.lower()
    return f"I'm not sure, but I think {sentence}"


def phrase(question: Question, answer: str, confidence: float | None) -> str:
    """The model's answer to ``question`` as one short spoken sentence, with its confidence in words:
    sure answers plainly, then "probably", then "I'm not sure, but I think"."""
    answer = re.sub(r"\s+", " ", (answer or "").strip().rstrip("."))
    if not answer:
        return "I have no answer to that."
    low = answer.lower()
    if question.kind == "yesno":
        word = "yes" if low.startswith("yes") else "no" if low.startswith("no") else low
        return hedge(word, confidence, negative="not" if word == "no" else None)
    if question.kind == "choice":
        spoken = dict(zip(question.choices, question.spoken_choices, strict=True)).get(low, answer)
        return hedge(spoken, confidence)
    if not fits(question, low) or (confidence is not None and confidence < OPEN_GUESS):
        return CANT_TELL
    band = _band(confidence, OPEN_SURE, OPEN_UNSURE)
    sentence = _worded(question, answer, "probably " if band == "probably" else "")
    if band != "unsure":
        return sentence
    if sentence == _sentence(answer):  # a bare answer keeps the model's own case: "... I think water."
        return f"I'm not sure, but I think {answer}."
    return _unsure(sentence)


def _gerund(word: str) -> bool:
    return len(word) > 4 and word.endswith("ing") and word not in NOT_GERUNDS


def fits(question: Question, low: str) -> bool:
    """Whether ``low`` (the model's answer, lowercase) is the kind of answer the question asks for. The
    model answers every question with something; "he is wearing holding" or "who is in the picture? -
    sitting" is an invention in the question's grammar, so it is not said (see CANT_TELL)."""
    words = low.split()
    if not words:
        return False
    first, yes_no = words[0], low in ("yes", "no")
    if question.kind == "count":
        return _number(low) is not None or first in ("many", "several", "lots", "few", "some")
    if question.kind == "doing":
        return _gerund(first)
    if question.kind in ("colour", "wearing"):
        return not (yes_no or _gerund(first) or _number(low) is not None)
    if question.kind == "where":
        return not (yes_no or _gerund(first) or low.isdigit())
    if question.kind == "open" and question.text.startswith(("what ", "which ", "who ")):
        asked_verb = question.text.rstrip("?").split()[-1]
        return not (yes_no or (_gerund(first) and _gerund(asked_verb)))
    return True


def _worded(question: Question, answer: str, adverb: str) -> str:
    """The answer as a sentence about the question's subject, ``adverb`` ("probably ") after its verb."""
    low = answer.lower()
    who = question.subject
    subject_is = f"{_who(who)} {_be(who, question.plural)} {adverb}"  # "The car is probably "
    if question.kind == "colour":
        return _sentence(subject_is + low)
    if question.kind == "count":
        n = _number(low)
        if n is None:
            return _sentence(adverb + answer)
        if n == 0:
            return f"There are {adverb}no {who}."
        if n == 1:
            return f"There is {adverb}one {_singular(who)}."
        count = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
        return f"There are {adverb}{count} {who}."
    if question.kind == "doing" and low.split()[0].endswith("ing"):
        return _sentence(subject_is + low)
    if question.kind == "wearing" and low not in ("nothing", "no"):
        return _sentence(f"{subject_is}wearing {low}")
    if question.kind == "where":
        return _where(question, low, subject_is, adverb) or _sentence(adverb + answer)
    return _sentence(adverb + answer)


def _where(question: Question, low: str, subject_is: str, adverb: str) -> str | None:
    """"where is the dog?" as a sentence: "on the beach" as said, "grass" -> "on the grass"; None for an
    answer that is no place the model was taught ("cabinet": said as it is)."""
    from assistant.datasets.caption_questions import PLACES

    if low.split()[0] in PREPOSITIONS or low in BARE_PLACES:
        place = low
    elif low in PLACES.values():
        place = f"{'on' if low in PLACES_ON else 'in'} the {low}"
    else:
        return None
    if question.subject in PICTURE_SUBJECTS:
        return _sentence(adverb + place)
    return _sentence(subject_is + place)


def answer(describer: Any, image: Any, raw_question: str, label: str | None = None) -> Any:
    """Answer one spoken question about ``image`` with ``describer`` (a
    :class:`assistant.describe.Describer`): an :class:`assistant.describe.Answer` whose ``text`` is what is
    said. Never raises for a bad image."""
    from assistant.describe import Answer
    from assistant.vision.errors import VisionError
    from assistant.vision.io import describe_source

    label = label or describe_source(image)
    started = time.perf_counter()
    question = parse(raw_question)
    if question.kind == "describe":
        d = describer.describe(image, label=label, detail="detailed")
        return Answer(image=label, question=raw_question, answer=d.caption, confidence=d.confidence,
                      text=d.text, error=d.error, error_code=d.error_code,
                      seconds=time.perf_counter() - started)
    choices = ["yes", "no"] if question.kind == "yesno" else list(question.choices) or None
    try:
        result = describer.ask_model(image, question.text, choices=choices)
    except VisionError as exc:  # a captioning-only checkpoint cannot answer questions
        return Answer(image=label, question=raw_question, error=str(exc), error_code=exc.code,
                      seconds=time.perf_counter() - started)
    out = Answer(image=label, question=raw_question, seconds=time.perf_counter() - started)
    if not result.ok:
        out.error, out.error_code = result.error, result.error_code
        return out
    out.answer, out.confidence = result.answer, result.confidence
    out.text = phrase(question, result.answer or "", result.confidence)
    if question.kind == "choice" and (sure_no := _neither(describer, image, question)) is not None:
        out.answer, out.confidence = "neither", sure_no
        out.text = f"Neither: I don't see {' or '.join(question.spoken_choices)}."
        out.seconds = time.perf_counter() - started  # the two questions asked on the way count too
    return out


def _neither(describer: Any, image: Any, question: Question) -> float | None:
    """"Is it a cat or a dog?" about a beach: ranking the offered answers always names one. Where they are
    things ("a cat", not "red" or "day"), each is asked about on its own ("is there a cat in the
    picture?", the model's strongest kind of question: 97% right when sure, on the val photos), and when
    each is a sure "no", none is named. Returns the least sure of those "no"s, or None."""
    if not all(s.split()[0] in ("a", "an", "some") for s in question.spoken_choices):
        return None
    sure_no = 1.0
    for thing in question.spoken_choices:
        result = describer.ask_model(image, f"is there {thing} in the picture?", choices=["yes", "no"])
        if not result.ok or result.answer != "no" or (result.confidence or 0.0) < SURE:
            return None
        sure_no = min(sure_no, result.confidence)
    return sure_no

"""Questions and answers derived from human image captions, for VQA training and evaluation.

The approach of Changpinyo et al. 2022, "All You May Need for VQA are Image Captions" (VQ²A), kept simple
and deterministic: each image's five human captions are read for what they agree on, and only that is
asked about.

- **presence** (yes/no): "is there a dog in the picture?" for a thing at least two captions name, and, to
  balance it, the same question for a thing no caption names nor anything of its kind (no "is there a
  woman?" when a caption says "person"), so that "yes" and "no" are equally common;
- **colour**: "what color is the dress?" where captions say "pink dress" and none gives it another colour;
- **count**: "how many dogs are there?" where captions say "two dogs" (and none another number), and "1"
  where at least three captions say "a dog" and none names more than one of its kind (without these, the
  model learnt that every count is "2");
- **activity**: "what is the man doing?" from "a man is climbing ...", when two captions agree on the verb;
- **place**: "where is this?" from "on the beach", "in the snow", when two captions agree.

Torch-free; the captions are read in place (``load_caption_dataset``) and nothing is written unless asked.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

KINDS = ("presence", "colour", "count", "activity", "place")

COLOURS = ("white", "black", "brown", "red", "blue", "green", "yellow", "orange", "pink", "purple", "gray",
           "tan")
COLOUR_SPELLINGS = {"grey": "gray"}
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
           "2": 2, "3": 3, "4": 4, "5": 5}
# Things asked about, by kind: a negative is only asked for a thing when no caption names any word of its
# kind, because captions name the same thing differently ("a child", "a girl", "a kid").
OBJECT_KINDS: dict[str, tuple[str, ...]] = {
    "person": ("man", "woman", "boy", "girl", "child", "person", "people", "men", "women", "boys", "girls",
               "children", "kid", "kids", "baby", "guy", "lady", "player", "players", "biker", "skier",
               "surfer", "snowboarder", "climber", "crowd", "toddler", "adult", "adults", "someone",
               "rider", "swimmer", "runner", "dancer", "team", "family", "couple", "he", "she"),
    "dog": ("dog", "dogs", "puppy", "puppies", "animal", "animals", "pet", "poodle", "terrier", "collie",
            "retriever", "shepherd", "dachshund", "greyhound", "beagle", "labrador", "pup"),
    "horse": ("horse", "horses", "pony", "animal", "animals"),
    "cat": ("cat", "cats", "kitten", "animal", "animals"),
    "bird": ("bird", "birds", "duck", "ducks", "goose", "seagull", "animal", "animals"),
    "ball": ("ball", "balls", "football", "soccer", "basketball", "volleyball", "tennis", "frisbee", "toy"),
    "bicycle": ("bike", "bikes", "bicycle", "bicycles", "cyclist", "biker", "bmx", "motorcycle", "dirt"),
    "car": ("car", "cars", "truck", "vehicle", "jeep", "bus", "van", "taxi", "traffic"),
    "water": ("water", "pool", "lake", "river", "ocean", "sea", "wave", "waves", "stream", "beach", "surf",
              "fountain", "puddle", "splash", "splashes", "swimming", "creek", "pond", "wet"),
    "snow": ("snow", "snowy", "ski", "skis", "skier", "snowboard", "snowboarder", "sled", "ice"),
    "grass": ("grass", "grassy", "field", "lawn", "park", "meadow", "yard"),
    "boat": ("boat", "boats", "kayak", "canoe", "raft", "ship"),
    "hat": ("hat", "hats", "cap", "helmet", "helmets", "hood", "beanie"),
    "tree": ("tree", "trees", "forest", "woods", "wooded", "branch", "branches"),
    "building": ("building", "buildings", "house", "city", "street", "store", "shop", "wall", "church"),
    "rock": ("rock", "rocks", "rocky", "cliff", "boulder", "mountain", "stone", "stones"),
    "sand": ("sand", "sandy", "beach", "desert", "dirt", "dune"),
    "bench": ("bench", "benches", "chair", "chairs", "seat", "couch", "sofa"),
}
# The word asked about for each kind ("is there a dog?"), and the words whose presence makes it a "yes".
ASKED = {"person": "person", "dog": "dog", "horse": "horse", "cat": "cat", "bird": "bird", "ball": "ball",
         "bicycle": "bicycle", "car": "car", "water": "water", "snow": "snow", "grass": "grass",
         "boat": "boat", "hat": "hat", "tree": "tree", "building": "building", "rock": "rock", "sand": "sand",
         "bench": "bench"}
POSITIVE_WORDS: dict[str, tuple[str, ...]] = {
    "person": ("man", "woman", "boy", "girl", "child", "person", "people", "men", "women", "boys", "girls",
               "children", "kid", "kids", "baby", "guy", "lady", "toddler"),
    "dog": ("dog", "dogs", "puppy", "puppies"), "horse": ("horse", "horses", "pony"), "cat": ("cat", "cats"),
    "bird": ("bird", "birds"), "ball": ("ball", "balls"), "bicycle": ("bike", "bikes", "bicycle", "bicycles"),
    "car": ("car", "cars"), "water": ("water",), "snow": ("snow",), "grass": ("grass",),
    "boat": ("boat", "boats"), "hat": ("hat", "hats"), "tree": ("tree", "trees"),
    "building": ("building", "buildings"), "rock": ("rock", "rocks"), "sand": ("sand",),
    "bench": ("bench", "benches"),
}
MASS_NOUNS = {"water", "snow", "grass", "sand"}
SUBJECTS = ("man", "woman", "boy", "girl", "child", "dog", "person", "baby", "horse", "kid", "guy", "lady",
            "skier", "biker", "surfer", "snowboarder", "player", "cat", "bird")
# Things a caption's "a dog" counts as one, with the plural the question asks about ("how many dogs are
# there?"); only things a caption would not call "a" when there are several of them in view.
ONE_OF = {"man": "men", "woman": "women", "boy": "boys", "girl": "girls", "child": "children",
          "dog": "dogs", "baby": "babies", "horse": "horses", "cat": "cats", "bird": "birds", "ball": "balls",
          "bike": "bikes", "bicycle": "bicycles", "car": "cars", "boat": "boats", "person": "people"}
# Plural words in the kinds' own lists ("kids", "puppies") and the plurals asked about: any one of
# them in a caption means more than one
PLURALS = set(ONE_OF.values()) | {"puppies", "kids", "animals", "players", "guys", "ladies"}
# Words saying there are several of a kind, whatever the number
SEVERAL = {"crowd", "group", "groups", "team", "teams", "family", "couple", "both", "several", "many",
           "pair", "each", "all", "herd", "pack", "flock", "others", "together", "they", "their", "them"}
# Nouns a colour is asked about: clothes, animals and things with one clear colour.
COLOURED = ("shirt", "dress", "jacket", "coat", "hat", "helmet", "shorts", "pants", "jeans", "top", "sweater",
            "uniform", "suit", "swimsuit", "cap", "dog", "ball", "car", "bike", "bicycle", "boat", "tent",
            "umbrella", "kayak", "truck", "shoes", "boots", "horse", "bag", "backpack", "wall", "door",
            "building", "toy", "frisbee", "t-shirt", "skirt", "bus", "chair", "scarf", "gloves", "costume",
            "outfit", "hoodie", "vest", "sweatshirt", "water", "bucket", "raft", "flag")
PLACES = {"beach": "beach", "snow": "snow", "water": "water", "grass": "grass", "field": "field",
          "park": "park", "street": "street", "road": "road", "pool": "pool", "ocean": "ocean",
          "lake": "lake",
          "river": "river", "sand": "sand", "mountain": "mountain", "forest": "forest", "woods": "forest",
          "stage": "stage", "playground": "playground", "city": "city", "sidewalk": "sidewalk",
          "desert": "desert", "yard": "yard", "track": "track", "court": "court", "trail": "trail",
          "hill": "hill", "dirt": "dirt", "mud": "mud", "waves": "ocean", "surf": "ocean", "sea": "ocean",
          "shore": "beach", "stream": "river", "lawn": "grass", "meadow": "field"}
# "-ing" words that are no activity to answer "what is the man doing?" with
GERUND_STOP = {"wearing", "doing", "being", "something", "nothing", "building", "clothing", "wedding",
               "evening", "morning", "ceiling",
               "railing", "thing", "king", "ring", "string", "spring", "swing", "ping", "wing", "sibling",
               "stuffing", "painting", "sling", "awning", "during", "bring", "sing", "ting", "bing"}


@dataclass(frozen=True)
class CaptionQuestion:
    """One generated question about one image, with its one reference answer."""

    image: str
    question: str
    answer: str
    kind: str  # one of KINDS
    image_id: str
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _words(caption: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z]+)?", caption.lower().replace("grey", "gray"))


def _agreed(votes: Counter, minimum: int = 2) -> Any:
    """The value at least ``minimum`` captions give, when no other value is given at all."""
    if len(votes) != 1:
        return None
    value, count = votes.most_common(1)[0]
    return value if count >= minimum else None


def presence_questions(captions: Sequence[Sequence[str]], rng: random.Random) -> list[tuple[str, str]]:
    """Balanced "is there a ...?" questions: one "yes" for a thing two captions name, one "no" for a thing
    whose whole kind no caption names."""
    named = [set(words) for words in captions]
    positives = [kind for kind, words in POSITIVE_WORDS.items()
                 if sum(1 for n in named if n & set(words)) >= 2]
    mentioned = set().union(*named) if named else set()
    negatives = [kind for kind, words in OBJECT_KINDS.items() if not mentioned & set(words)]
    if not positives or not negatives:
        return []
    yes, no = rng.choice(positives), rng.choice(negatives)
    return [(_presence_question(yes), "yes"), (_presence_question(no), "no")]


def _presence_question(kind: str) -> str:
    word = ASKED[kind]
    if word in MASS_NOUNS:
        return f"is there {word} in the picture?"
    article = "an" if word[0] in "aeiou" else "a"
    return f"is there {article} {word} in the picture?"


def colour_questions(captions: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    votes: dict[str, Counter] = {}
    for words in captions:
        for i, word in enumerate(words[:-1]):
            noun = words[i + 1]
            if noun in COLOURED:
                colour = COLOUR_SPELLINGS.get(word, word)
                # "black and white dog", "red-haired": no single colour to ask about
                before = words[i - 1] if i else ""
                if colour in COLOURS:
                    several = before == "and" or before in COLOURS
                    votes.setdefault(noun, Counter())["several" if several else colour] += 1
                elif word.endswith(("-colored", "-striped")) or word in ("striped", "colorful"):
                    votes.setdefault(noun, Counter())["several"] += 1
    out = []
    for noun, colours in sorted(votes.items()):
        colour = _agreed(colours)
        if colour is not None and colour != "several":
            be = "are" if noun in ("shorts", "pants", "jeans", "shoes", "boots", "gloves") else "is"
            out.append((f"what color {be} the {noun}?", colour))
    return out


def count_questions(captions: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    votes: dict[str, Counter] = {}
    for words in captions:
        for i, word in enumerate(words[:-1]):
            if word in NUMBERS:
                # "two dogs", "two brown dogs": the noun is the first plural word after the number
                for noun in words[i + 1 : i + 3]:
                    if noun.endswith("s") or noun in ("people", "men", "women", "children"):
                        votes.setdefault(noun, Counter())[NUMBERS[word]] += 1
                        break
    for noun, plural in ONE_OF.items():
        singles = sum(any(w in ("a", "an", "one") and noun in words[i + 1 : i + 3]  # "a (black) dog"
                          for i, w in enumerate(words)) for words in captions)
        if singles >= 3 and not any(_more_than_one(words, noun) for words in captions):
            votes.setdefault(plural, Counter())[1] += singles
    out = []
    for noun, counts in sorted(votes.items()):
        n = _agreed(counts)
        if n is not None:
            out.append((f"how many {noun} are there?", str(n)))
    return out


def _more_than_one(words: Sequence[str], noun: str) -> bool:
    """Whether a caption speaks of more than one thing of ``noun``'s kind ("two dogs", "puppies", "another
    dog", "a crowd"), so that "a dog" in another caption may be one of several."""
    several = _several(noun)
    for i, word in enumerate(words):
        if word in several:
            return True
        if word in ("another", "other", "others") and noun in words[i + 1 : i + 3]:
            return True
    return False


@cache
def _several(noun: str) -> frozenset[str]:
    """The words that say there is more than one of ``noun``'s kind: its plurals and SEVERAL's."""
    kind = next((k for k, names in OBJECT_KINDS.items() if noun in names), None)
    kin = OBJECT_KINDS[kind] if kind else (noun,)
    plurals = {ONE_OF.get(n, n + "s") for n in kin} | {n + "es" for n in kin} | (set(kin) & PLURALS)
    return frozenset(plurals | SEVERAL)


def activity_questions(captions: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    votes: dict[str, Counter] = {}
    for words in captions:
        for i, word in enumerate(words):
            if word not in SUBJECTS or i + 1 >= len(words):
                continue
            nxt = words[i + 1 : i + 4]
            verb = next((w for w in nxt if w.endswith("ing") and len(w) > 4 and w not in GERUND_STOP), None)
            if verb is not None:
                votes.setdefault(word, Counter())[verb] += 1
                break
    out = []
    for subject, verbs in sorted(votes.items()):
        verb, count = verbs.most_common(1)[0]
        if count >= 2:
            out.append((f"what is the {subject} doing?", verb))
    return out


def place_questions(captions: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    votes: Counter = Counter()
    for words in captions:
        seen = set()
        for i, word in enumerate(words[:-1]):
            if word in ("in", "on", "at", "through", "into", "across", "along", "near", "by") and \
                    i + 1 < len(words):
                after = words[i + 1 : i + 4]
                place = next((PLACES[w] for w in after if w in PLACES), None)
                if place is not None:
                    seen.add(place)
        votes.update(seen)
    if not votes:
        return []
    (place, count), *rest = votes.most_common()
    if count < 2 or (rest and rest[0][1] == count):
        return []
    return [("where is this?", place)]


def questions_for(image: str, image_id: str, captions: Sequence[str], split: str | None,
                  rng: random.Random, kinds: Iterable[str] = KINDS) -> list[CaptionQuestion]:
    """Every question the captions of one image support."""
    words = [_words(c) for c in captions]
    makers = {"presence": lambda: presence_questions(words, rng), "colour": lambda: colour_questions(words),
              "count": lambda: count_questions(words), "activity": lambda: activity_questions(words),
              "place": lambda: place_questions(words)}
    out = []
    for kind in kinds:
        for question, answer in makers[kind]():
            out.append(CaptionQuestion(image, question, answer, kind, image_id, split))
    return out


def build(records: Iterable[Any], *, seed: int = 0, kinds: Iterable[str] = KINDS) -> list[CaptionQuestion]:
    """Questions for caption records (``assistant.datasets.CaptionRecord``: image, captions, image_id, split),
    reproducible for a ``seed``."""
    rng = random.Random(seed)
    kinds = tuple(kinds)
    out: list[CaptionQuestion] = []
    for record in records:
        out.extend(questions_for(record.image, record.image_id, record.captions, record.split, rng, kinds))
    return out

"""CHAIR-style object hallucination (Rohrbach et al. 2018, "Object Hallucination in Image Captioning").

A caption *hallucinates* an object when it names one (through any of its synonyms) that none of the
image's references names. Two shares, as in the paper: ``chair_s``, the share of captions with at least
one hallucinated object, and ``chair_i``, the share of object mentions that are hallucinated. The human
baseline scores each reference against the image's other references (leave one out).

The vocabulary is compact and hand-made for this assistant: the COCO-80 objects with Rohrbach's kind of
synonyms (every word for a person counts as "person"), Flickr8k's frequent concrete nouns (clothing, toys,
sports gear) and the objects that out-of-domain photos and screens show (a cup of coffee, a rocket, a page
of text). Scenes and stuff (grass, water, snow, street) are not objects here, as in CHAIR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# canonical object: its surface forms (singular; regular plurals are added, irregular ones are listed)
_VOCAB_TEXT = """
person: person, man, men, woman, women, boy, girl, child, children, kid, baby, toddler, infant, people,
  guy, lady, ladies, gentleman, gentlemen, adult, teenager, teen, player, biker, bicyclist, cyclist, rider,
  skier, snowboarder, skateboarder, surfer, swimmer, climber, runner, jogger, dancer, worker, crowd, family,
  daughter, son, mother, father, dad, mom, brother, sister, tourist, spectator, audience, performer,
  musician, singer, guitarist, drummer, athlete, cowboy, soldier, officer, policeman, fan, student, hiker,
  wrestler, gymnast, lifeguard, fisherman, referee, bride, groom, astronaut, someone, person, persons,
  cheerleader, diver, skater, wakeboarder, kayaker, goalie, pitcher, batter, catcher
dog: dog, puppy, pup, poodle, terrier, retriever, labrador, collie, greyhound, dalmatian, beagle, husky,
  pug, chihuahua, spaniel, sheepdog, bulldog, doberman, rottweiler, dachshund, schnauzer, mutt
cat: cat, kitten, kitty
horse: horse, pony, foal, stallion, mare
sheep: sheep, lamb
cow: cow, cattle, bull, calf, calves, ox, oxen, steer
bird: bird, duck, goose, geese, seagull, gull, pigeon, parrot, swan, chicken, hen, rooster, eagle, owl,
  penguin, flamingo, pelican, heron
elephant: elephant
bear: bear
zebra: zebra
giraffe: giraffe
animal_other: camel, goat, pig, monkey, deer, snake, lizard, frog, turtle, rabbit, squirrel, lion, tiger
fish: fish
insect: insect, butterfly, bug, bee
bicycle: bicycle, bike, bmx, unicycle, tricycle
motorcycle: motorcycle, motorbike, scooter, moped, atv
car: car, automobile, taxi, jeep, suv, convertible
bus: bus, buses
truck: truck, pickup, lorry
train: train, locomotive, tram
boat: boat, ship, kayak, canoe, raft, sailboat, yacht
airplane: airplane, plane, jet, aircraft, airliner
rocket: rocket, missile, spaceship, spacecraft, shuttle
skateboard: skateboard
surfboard: surfboard, bodyboard, boogie board
skis: ski, skis
snowboard: snowboard
sled: sled, sleigh, toboggan
wheelchair: wheelchair
stroller: stroller, pram
ball: ball, football, soccerball, basketball, volleyball, baseball, softball
frisbee: frisbee
kite: kite
racket: racket, racquet
bat: bat
glove: glove, mitt, mitten
umbrella: umbrella, parasol
bag: bag, backpack, handbag, purse, suitcase, luggage
tie: tie, necktie
bottle: bottle
cup: cup, mug, teacup
coffee: coffee, espresso, latte, cappuccino
saucer: saucer
plate: plate, dish
bowl: bowl
spoon: spoon, teaspoon
fork: fork
knife: knife, knives
food: pizza, cake, sandwich, donut, banana, apple, broccoli, carrot, hamburger, burger, hotdog, food,
  bread, fruit
chair: chair, stool
couch: couch, sofa
bed: bed
table: table, desk
toilet: toilet
sink: sink
tv: tv, television
computer: computer, laptop
screen: screen, monitor, display
keyboard: keyboard
mouse: mouse, mice
phone: phone, cellphone, telephone, smartphone
book: book, magazine, novel
clock: clock, wristwatch
vase: vase
teddy_bear: teddy, teddy_bear
toy: toy
flag: flag
sign: sign, billboard, banner, poster
fence: fence
bench: bench
tent: tent
rope: rope
stick: stick
camera: camera
microphone: microphone, mic
guitar: guitar
drum: drum
hat: hat, cap, beanie
helmet: helmet
shirt: shirt, t_shirt, tshirt, jersey, blouse
jacket: jacket, coat, hoodie, sweater, sweatshirt, vest, parka
dress: dress, gown, skirt
pants: pants, jeans, trousers, shorts
shoe: shoe, boot, sneaker, sandal
eyewear: glasses, sunglasses, goggles, eyeglasses
scarf: scarf, scarves
costume: costume, uniform
swimsuit: swimsuit, bikini, trunks
pool: pool, swimming_pool
fountain: fountain
building: building, house, church, tower, skyscraper, castle
tree: tree
flower: flower
window: window
door: door
text: text, writing, letter, word
page: page, paper, document, newspaper, web_page, website
menu: menu
rock_object: boulder
coin: coin
box: box, crate, carton
shelf: shelf, shelves
"""

# Two-word names read as one object before single words are (a "hot dog" is no dog).
_BIGRAMS: dict[str, str | None] = {
    "hot dog": "food", "teddy bear": "teddy_bear", "cell phone": "phone", "tennis racket": "racket",
    "baseball bat": "bat", "baseball glove": "glove", "baseball cap": "hat", "wine glass": "cup",
    "stop sign": "sign", "street sign": "sign", "traffic light": None, "tank top": "shirt",
    "life jacket": "jacket", "swimming pool": "pool", "computer screen": "screen", "web page": "page",
    "space shuttle": "rocket", "coffee cup": "cup", "ice cream": "food", "boogie board": "surfboard",
    "dirt bike": "motorcycle", "mountain bike": "bicycle", "soccer ball": "ball", "tennis ball": "ball",
    "golf ball": "ball", "beach ball": "ball", "bathing suit": "swimsuit", "swim trunks": "swimsuit",
    "stuffed animal": "toy", "rock climber": "person", "rock wall": None, "fire hydrant": None,
    "water bottle": "bottle", "police officer": "person", "computer code": None, "message box": None,
    "dialog box": None, "text box": None,
}
# Words that look like objects but in captions are nearly always something else ("an orange shirt",
# "in front of", "on top of").
_NOT_OBJECTS = frozenset({"orange", "top", "front"})
_IRREGULAR_ONLY = frozenset({"sheep", "fish", "deer", "people", "men", "women", "children", "geese", "mice",
                             "glasses", "sunglasses", "goggles", "eyeglasses", "jeans", "pants", "shorts"})


def _plurals(word: str) -> set[str]:
    if word in _IRREGULAR_ONLY:
        return {word}
    forms = {word, word + "s"}
    if word.endswith(("s", "x", "ch", "sh")):
        forms.add(word + "es")
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        forms.add(word[:-1] + "ies")
    if word.endswith("f"):
        forms.add(word[:-1] + "ves")
    return forms


def _parse_vocab(text: str) -> dict[str, str]:
    words: dict[str, str] = {}
    for entry in re.split(r"\n(?=\S)", text.strip()):
        canonical, _, forms = entry.partition(":")
        for form in forms.replace("\n", " ").split(","):
            form = form.strip()
            if form and form not in _NOT_OBJECTS:
                for surface in _plurals(form):
                    words.setdefault(surface, canonical.strip())
    return words


WORD_TO_OBJECT: dict[str, str] = _parse_vocab(_VOCAB_TEXT)
OBJECTS: frozenset[str] = frozenset(WORD_TO_OBJECT.values())
# The objects that COCO's 80 categories cover (Rohrbach et al. count these alone): for comparing with
# COCO-based CHAIR figures. Clothing, buildings, plants and screens are outside it.
COCO_OBJECTS: frozenset[str] = frozenset({
    "person", "dog", "cat", "horse", "sheep", "cow", "bird", "elephant", "bear", "zebra", "giraffe",
    "bicycle", "motorcycle", "car", "bus", "truck", "train", "boat", "airplane", "skateboard", "surfboard",
    "skis", "snowboard", "ball", "frisbee", "kite", "racket", "bat", "glove", "umbrella", "bag", "tie",
    "bottle", "cup", "bowl", "spoon", "fork", "knife", "food", "chair", "couch", "bed", "table", "toilet",
    "sink", "tv", "computer", "mouse", "keyboard", "phone", "book", "clock", "vase", "teddy_bear", "bench",
})


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("t-shirt", "t_shirt")
    return re.findall(r"[a-z_]+", text)


def mentions(text: str) -> list[str]:
    """The canonical objects that ``text`` names, in order, one entry per mention."""
    tokens = _tokens(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        pair = " ".join(tokens[i : i + 2])
        if pair in _BIGRAMS:
            if _BIGRAMS[pair] is not None:
                out.append(_BIGRAMS[pair])  # type: ignore[arg-type]
            i += 2
            continue
        obj = WORD_TO_OBJECT.get(tokens[i])
        if obj is not None:
            out.append(obj)
        i += 1
    return out


def objects(text: str) -> set[str]:
    return set(mentions(text))


@dataclass
class ChairCount:
    """Running CHAIR tallies; :meth:`add` one caption at a time, read the shares at the end."""

    only: frozenset[str] | None = None  # count these objects alone (e.g. COCO_OBJECTS); None: all
    captions: int = 0
    hallucinating_captions: int = 0
    mentions: int = 0
    hallucinated_mentions: int = 0
    captions_with_objects: int = 0
    hallucinated: dict[str, int] = field(default_factory=dict)

    def add(self, caption: str, reference_objects: Iterable[str]) -> list[str]:
        """Count one caption against the set of objects its references name; return what it invented."""
        allowed = set(reference_objects)
        named = [o for o in mentions(caption) if self.only is None or o in self.only]
        invented = [o for o in named if o not in allowed]
        self.captions += 1
        self.mentions += len(named)
        self.hallucinated_mentions += len(invented)
        self.captions_with_objects += bool(named)
        if invented:
            self.hallucinating_captions += 1
            for o in set(invented):
                self.hallucinated[o] = self.hallucinated.get(o, 0) + 1
        return invented

    @property
    def chair_s(self) -> float:
        return self.hallucinating_captions / self.captions if self.captions else 0.0

    @property
    def chair_i(self) -> float:
        return self.hallucinated_mentions / self.mentions if self.mentions else 0.0

    def as_dict(self, top: int = 10) -> dict[str, object]:
        worst = sorted(self.hallucinated.items(), key=lambda kv: -kv[1])[:top]
        return {"captions": self.captions, "chair_s": self.chair_s, "chair_i": self.chair_i,
                "mentions": self.mentions, "hallucinated_mentions": self.hallucinated_mentions,
                "captions_without_objects": self.captions - self.captions_with_objects,
                "most_invented": dict(worst)}


def reference_objects(references: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for ref in references:
        found |= objects(ref)
    return found


def chair(
    captions: Mapping[object, str],
    references: Mapping[object, Sequence[str]],
    only: frozenset[str] | None = None,
) -> ChairCount:
    """CHAIR of one caption per image against all of that image's references."""
    count = ChairCount(only=only)
    for key, caption in captions.items():
        count.add(caption, reference_objects(references[key]))
    return count


def human_chair(references: Mapping[object, Sequence[str]], only: frozenset[str] | None = None) -> ChairCount:
    """The human baseline: each reference against the image's other references (images with at least two)."""
    count = ChairCount(only=only)
    for refs in references.values():
        if len(refs) < 2:
            continue
        for i, ref in enumerate(refs):
            count.add(ref, reference_objects([r for j, r in enumerate(refs) if j != i]))
    return count

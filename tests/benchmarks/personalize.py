"""Personalization on the user's corrections (issue #24): does the model learn the user's words, keep
what it knew, and how long does it take?

    nice -n 10 python tests/benchmarks/personalize.py names   [--out FILE.json]   # (a) + (c)
    nice -n 10 python tests/benchmarks/personalize.py world   [--out FILE.json]   # (b)
    ... names --fast     # describing on the fast path, as the app does on a CPU with int8 kernels

(a) **Names.** 10 corrections call the dog in Flickr8k *train* dog photos "Biscuit" (a human caption with
the dog's noun phrase replaced), 40 more correct non-dog train photos with a human caption. Then, on
Flickr8k *test* photos: the share of dog photos (every reference says "dog", none "dogs") whose caption
says "biscuit" (target >= 70%), of non-dog photos (no reference mentions a dog) that wrongly do
(<= 10%), and CIDEr on the non-dog photos against the base model (no more than 10% lower).
(c) **Time.** The same 50 corrections, from the first step to an accepted version, timed (<= 3 min),
with the machine's load average printed beside it. Then the cost in use: a brief description of 12 of
the other photos and 12 dog photos, base model against the personal version (the baseline, in the same run).
(b) **Another world.** DAQUAR's NYU indoor rooms, with captions in their own style written from the DAQUAR
answers about each room ("a room with a table, a chair and a lamp"): 100 corrections from train rooms,
CIDEr on 100 test rooms against the base model (target +20%).

Each run works in a fresh temporary ``BLIP_ASSISTANT_HOME``; the data is read in place from
``../shared/data`` and never copied into the project.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("BLIP_ASSISTANT_DATA_DIR", REPO.parent / "shared" / "data"))
NAME = "Biscuit"
# "a black and white dog", "the brown dog", "a dog": the article, up to three describing words, "dog"
_NOT_DESCRIBING = r"(?!(?:while|his|her|is|on|in|with|by|as|the|a|an)\b)"
DOG_PHRASE = re.compile(rf"\b(?:a|an|the|one)\s+(?:{_NOT_DESCRIBING}[a-z-]+\s+){{0,3}}?dog\b", re.IGNORECASE)
COLOURS = {"white", "black", "brown", "red", "blue", "green", "yellow", "grey", "gray", "orange", "pink",
           "purple", "beige", "silver", "gold", "cyan", "violet"}


def _flickr() -> list[dict]:
    return json.loads((DATA / "flickr8k" / "dataset_flickr8k.json").read_text())["images"]


def _path(item: dict) -> str:
    return str(DATA / "flickr8k" / "images" / item["filename"])


def _mentions_dog(item: dict) -> tuple[bool, bool]:
    """(every reference says 'dog' and none 'dogs'/'puppies', no reference mentions a dog at all)."""
    toks = [set(s["tokens"]) for s in item["sentences"]]
    one_dog = all("dog" in t and not t & {"dogs", "puppies"} for t in toks)
    no_dog = not any(t & {"dog", "dogs", "puppy", "puppies"} for t in toks)
    return one_dog, no_dog


def name_corrections(n_dog: int = 10, n_other: int = 40) -> list[tuple[str, str]]:
    train = [i for i in _flickr() if i["split"] == "train"]
    dogs, others = [], []
    for item in train:
        one_dog, no_dog = _mentions_dog(item)
        if one_dog and len(dogs) < n_dog:
            raw = next((s["raw"] for s in item["sentences"] if DOG_PHRASE.search(s["raw"])), None)
            if raw:
                dogs.append((_path(item), DOG_PHRASE.sub(NAME, raw, count=1).strip(" .")))
        elif no_dog and len(others) < n_other and item["imgid"] % 7 == 0:
            others.append((_path(item), item["sentences"][0]["raw"].strip(" .")))
    return dogs + others


def _test_sets(n_dog: int, n_other: int) -> tuple[list[dict], list[dict]]:
    test = [i for i in _flickr() if i["split"] == "test"]
    dogs = [i for i in test if _mentions_dog(i)[0]][:n_dog]
    others = [i for i in test if _mentions_dog(i)[1]][:n_other]
    return dogs, others


def _daquar_captions(split: str) -> dict[int, str]:
    """One caption per room in DAQUAR's own world: the objects its answers name most, in a fixed style."""
    root = DATA / "daquar"
    answers = json.loads((root / f"daquar_{split}_annotations.json").read_text())["annotations"]
    objects: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for a in answers:
        for part in str(a["multiple_choice_answer"]).split(","):
            word = part.strip().replace("_", " ")
            if word and not word.isdigit() and word not in COLOURS and len(word) > 2:
                objects[a["image_id"]][word] += 1
    out = {}
    for image_id, counts in objects.items():
        top = [w for w, _ in counts.most_common(3)]
        if len(top) >= 2:
            listed = ", ".join(f"a {w}" for w in top[:-1]) + f" and a {top[-1]}"
            out[image_id] = f"an indoor room with {listed}"
    return out


def _daquar_path(image_id: int) -> str:
    return str(DATA / "daquar" / "images" / f"image{image_id}.jpg")


def _captions(blip, paths: list[str]) -> list[str]:
    """As a description says them: with a personal version, its captions where they use one of the
    user's words and the base model's elsewhere (assistant.personal.gate)."""
    from assistant.personal.gate import captions

    out: list[str] = []
    for start in range(0, len(paths), 16):
        out += captions(blip, paths[start:start + 16], decoding="greedy", max_new_tokens=20)
    return out


def _cider(preds: list[str], refs: list[list[str]]) -> float:
    from assistant.evaluation.caption_metrics import caption_scores

    scores = caption_scores(dict(enumerate(preds)), dict(enumerate(refs)), meteor=False, tokenizer="python")
    return float(scores["CIDEr"])


def _fill(store, pairs: list[tuple[str, str]]) -> None:
    for path, caption in pairs:
        store.add(path, caption, model="builtin")


def _progress(text: str, _fraction: float | None) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _train(pairs: list[tuple[str, str]], steps: int = 0, seed: int = 0) -> tuple[object, float]:
    from assistant.personal import trainer
    from assistant.personal.corrections import CorrectionStore

    with CorrectionStore() as store:
        _fill(store, pairs)
        started = time.monotonic()
        recipe = trainer.Recipe(steps=steps, seed=seed)
        outcome = trainer.personalize("builtin", store=store, recipe=recipe, progress=_progress)
    return outcome, time.monotonic() - started


def _versions_blip():
    """The model as the app loads it: the active personal version merged in (and, with ``--fast``, on the
    fast path with its gate); and its :class:`~assistant.describe.Describer`."""
    from assistant.describe import Describer

    describer = Describer("builtin")
    return describer.load(), describer


def _base_blip():
    from assistant.describe import Describer

    describer = Describer("builtin", personal=False)
    return describer.load(), describer


def _describe_ms(describers: dict, photos: dict[str, list[str]], rounds: int = 2) -> dict:
    """Median milliseconds of a brief description, as the app makes one, per describer and kind of photo;
    the describers take turns, so a change in the machine's speed falls on all of them."""
    from PIL import Image

    images = {kind: [Image.open(p).convert("RGB") for p in paths] for kind, paths in photos.items()}
    times: dict = {name: {kind: [] for kind in images} for name in describers}
    for describer in describers.values():
        describer.describe(next(iter(images.values()))[0].copy())  # warm
    for _ in range(rounds):
        for name, describer in describers.items():
            for kind, pictures in images.items():
                for picture in pictures:
                    started = time.perf_counter()
                    describer.describe(picture.copy())  # a new picture each time: no kept features
                    times[name][kind].append(time.perf_counter() - started)
    return {name: {kind: round(1000 * statistics.median(v), 1) for kind, v in kinds.items()}
            for name, kinds in times.items()}


def run_names(args: argparse.Namespace) -> dict:

    pairs = name_corrections()
    load_before = os.getloadavg()
    outcome, seconds = _train(pairs, args.steps, args.seed)
    load_after = os.getloadavg()
    dogs, others = _test_sets(args.dogs, args.others)
    base, base_describer = _base_blip()
    base_dog = _captions(base, [_path(i) for i in dogs])
    base_other = _captions(base, [_path(i) for i in others])
    personal, describer = _versions_blip()
    applied = describer.personal_version
    result: dict = {"seed": args.seed, "outcome": outcome.to_dict(), "seconds_to_accepted": round(seconds, 1),
                    "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(),
                    "applied_version": getattr(applied, "number", None),
                    "user_words": getattr(applied, "recipe", {}).get("user_words")}
    pers_dog = _captions(personal, [_path(i) for i in dogs])
    pers_other = _captions(personal, [_path(i) for i in others])
    said = lambda caps: sum(NAME.lower() in c.lower() for c in caps) / max(len(caps), 1)  # noqa: E731
    refs_other = [[s["raw"] for s in i["sentences"]] for i in others]
    result.update(
        dog_photos=len(dogs), other_photos=len(others),
        name_on_dogs=said(pers_dog), name_on_others=said(pers_other),
        base_name_on_dogs=said(base_dog),
        cider_other_base=_cider(base_other, refs_other), cider_other_personal=_cider(pers_other, refs_other),
        examples=[{"base": b, "personal": p} for b, p in zip(base_dog[:5] + base_other[:3],
                                                             pers_dog[:5] + pers_other[:3], strict=True)],
    )
    result["cider_ratio"] = result["cider_other_personal"] / max(result["cider_other_base"], 1e-9)
    # The cost in use: a photo without the user's words is captioned twice (the base model's caption too)
    ms = _describe_ms({"base": base_describer, "personal": describer},
                      {"others": [_path(i) for i in others[:12]], "dogs": [_path(i) for i in dogs[:12]]})
    result.update(describe_ms=ms, describe_ratio_others=ms["personal"]["others"] / ms["base"]["others"],
                  describe_ratio_dogs=ms["personal"]["dogs"] / ms["base"]["dogs"])
    return result


def run_world(args: argparse.Namespace) -> dict:

    train = _daquar_captions("train")
    test = _daquar_captions("test")
    train_ids = sorted(train)[: args.corrections]
    test_ids = sorted(test)[: args.test]
    pairs = [(_daquar_path(i), train[i]) for i in train_ids]
    outcome, seconds = _train(pairs, args.steps, args.seed)
    base, _ = _base_blip()
    paths = [_daquar_path(i) for i in test_ids]
    refs = [[test[i]] for i in test_ids]
    base_caps = _captions(base, paths)
    personal, describer = _versions_blip()
    applied = describer.personal_version
    pers_caps = _captions(personal, paths)
    result = {"outcome": outcome.to_dict(), "seconds": round(seconds, 1), "load": os.getloadavg(),
              "applied_version": getattr(applied, "number", None), "test_rooms": len(test_ids),
              "user_words": getattr(applied, "recipe", {}).get("user_words"),
              "cider_base": _cider(base_caps, refs), "cider_personal": _cider(pers_caps, refs),
              "examples": [{"reference": r[0], "base": b, "personal": p}
                           for r, b, p in zip(refs[:5], base_caps[:5], pers_caps[:5], strict=True)]}
    result["cider_gain"] = result["cider_personal"] / max(result["cider_base"], 1e-9) - 1
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=("names", "world"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the recipe's own choice)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the recipe's seed: which corrections are kept aside, and the training's draws")
    parser.add_argument("--dogs", type=int, default=60)
    parser.add_argument("--others", type=int, default=100)
    parser.add_argument("--corrections", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--fast", action="store_true",
                        help="describe on the fast path, as the app does on this CPU (default: float32, the "
                             "path the recipe's acceptance test measures)")
    args = parser.parse_args(argv)
    if not (DATA / "flickr8k").is_dir():
        print(f"skipped: no data at {DATA}", file=sys.stderr)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["BLIP_ASSISTANT_FAST"] = "1" if args.fast else "0"
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-personal-") as tmp:
        os.environ["BLIP_ASSISTANT_HOME"] = tmp
        result = run_names(args) if args.which == "names" else run_world(args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

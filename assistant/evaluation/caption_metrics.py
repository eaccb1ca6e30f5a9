"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) computed by the COCO reference code.

The numbers come from ``pycocoevalcap`` (the code behind every published COCO/Flickr caption score),
not from a re-implementation, so they compare with papers. Two of its parts need Java: the Stanford
PTB tokenizer and METEOR. Without Java, captions are tokenized by :func:`simple_ptb_tokenize` (a
pure-Python imitation of the PTB tokenizer's output for ordinary captions) and METEOR is reported as
missing; the result's ``"notes"`` say so. SPICE is always skipped: it downloads Stanford CoreNLP
models on first use, which this toolkit never does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from assistant.vision.errors import DataError

# The PTB tokens the COCO toolkit drops after tokenizing (pycocoevalcap.tokenizer.ptbtokenizer).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
SPICE_NOTE = "SPICE skipped: it needs Stanford CoreNLP models downloaded on first use"
JAVA_TIMEOUT_S = 600.0

Tokenizer = Literal["auto", "ptb", "python"]

# --- tokenizers ------------------------------------------------------------------------------

# The PTB tokenizer spells brackets as -LRB- etc. The COCO toolkit lower-cases with -lowerCase and
# then drops "-LRB-" (upper case) only, so "-lrb-" survives in its output; copied here so that both
# tokenizers give the same scores.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_ABBREVIATIONS = frozenset(
    ["mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "vs.", "etc.", "inc.", "co.", "no."]
)
_WHOLE_TOKENS = frozenset([*_BRACKETS.values(), "'s", "'re", "'ve", "'ll", "'d", "'m", "n't", "'n'", "'n"])
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "wanna": "wan na", "gotta": "got ta"}


def simple_ptb_tokenize(text: str) -> str:
    """Tokenize like the COCO toolkit's PTB step (lower-case, split clitics, drop punctuation).

    A pure-Python stand-in for Stanford's PTBTokenizer used when Java is missing. It follows the PTB
    rules that matter for captions: lower-casing; ``n't``/``'s``/``'re``/``'ve``/``'ll``/``'d``/``'m``
    split off the word; ``cannot`` -> ``can not``; brackets spelled ``-lrb-``/``-rrb-``; ``$ % # & =``
    split off; quotes and the punctuation marks in :data:`PUNCTUATIONS` removed; commas and colons
    inside numbers (``1,000``, ``10:30``), decimal points, hyphenated words and initials (``u.s.``)
    kept whole. On the 40,000 Flickr8k captions it matches the Java tokenizer on all but one.
    """
    text = (
        text.lower()
        .replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )
    for bracket, token in _BRACKETS.items():
        text = text.replace(bracket, f" {token} ")
    text = text.replace('"', " ")
    text = re.sub(r"\.{3,}", " ... ", text)
    text = re.sub(r"-{2,}", " -- ", text)
    # , and : split off unless they sit between digits; ; ? ! always
    text = re.sub(r"(?<!\d)([,:])|([,:])(?!\d)", lambda m: f" {m.group(0)} ", text)
    text = re.sub(r"([;?!$%#&=])", r" \1 ", text)
    tokens: list[str] = []
    for word in text.split():
        tokens.extend(_split_word(word))
    return " ".join(token for token in tokens if token not in PUNCTUATIONS)


def _split_word(word: str) -> list[str]:
    if word in _SPLIT_WORDS:
        return _SPLIT_WORDS[word].split()
    if word in _WHOLE_TOKENS:
        return [word]
    head: list[str] = []
    while word[:1] in ("'", "`", "-") and len(word) > 1:  # opening quotes, a leading hyphen
        head.append(word[0])
        word = word[1:]
    tail: list[str] = []
    while True:
        if word.endswith(".") and len(word) > 1 and not _keeps_period(word):
            tail.insert(0, ".")
            word = word[:-1]
        elif word.endswith("'") and len(word) > 1:
            tail.insert(0, "'")
            word = word[:-1]
        elif word.endswith("-") and len(word) > 1:
            tail.insert(0, "-")
            word = word[:-1]
        else:
            break
    clitic = re.fullmatch(r"(.+?)(n't|'s|'re|'ve|'ll|'d|'m)", word)
    core = [clitic.group(1), clitic.group(2)] if clitic else [word]
    return head + core + tail


def _keeps_period(word: str) -> bool:
    return word in _ABBREVIATIONS or re.fullmatch(r"([a-z]\.)+", word) is not None or word == "..."


def java_path() -> str | None:
    """The ``java`` executable on PATH, or None."""
    return shutil.which("java")


def _package_file(module: str, name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"{module} is not installed")
    return Path(spec.origin).parent / name


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenize with the Stanford PTBTokenizer jar shipped in pycocoevalcap, as the COCO toolkit does.

    Same jar, flags and punctuation removal as ``pycocoevalcap.tokenizer.PTBTokenizer``, but the
    temporary file goes to the system temp folder (not into site-packages, which may be read-only)
    and line breaks inside a caption cannot shift the captions out of line.
    """
    java = java_path()
    if java is None:
        raise RuntimeError("java is not on PATH")
    jar = _package_file("pycocoevalcap.tokenizer.ptbtokenizer", "stanford-corenlp-3.4.1.jar")
    lines = [" ".join(text.split()) for text in texts]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    try:
        completed = subprocess.run(
            [
                java,
                "-cp",
                str(jar),
                "edu.stanford.nlp.process.PTBTokenizer",
                "-preserveLines",
                "-lowerCase",
                handle.name,
            ],
            capture_output=True,
            check=True,
            timeout=JAVA_TIMEOUT_S,
        )
    finally:
        os.unlink(handle.name)
    output = completed.stdout.decode("utf-8").split("\n")
    if len(output) < len(lines):  # trailing empty captions produce no output line
        output += [""] * (len(lines) - len(output))
    return [
        " ".join(w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS)
        for line in output[: len(lines)]
    ]


# --- scoring ---------------------------------------------------------------------------------


def _check_inputs(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> list[Hashable]:
    if not predictions:
        raise DataError("no predictions to score")
    missing = [key for key in predictions if key not in references]
    if missing:
        raise DataError(f"{len(missing)} prediction(s) have no references, e.g. {missing[:5]}")
    empty = [key for key in predictions if not references[key]]
    if empty:
        raise DataError(f"{len(empty)} image(s) have an empty reference list, e.g. {empty[:5]}")
    for key, text in predictions.items():
        if not isinstance(text, str):
            raise DataError(f"prediction for {key!r} is {type(text).__name__}, not text")
    return list(predictions)


def _tokenize_all(
    keys: list[Hashable],
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    tokenizer: Tokenizer,
    notes: list[str],
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]], str]:
    texts = [predictions[key] for key in keys]
    counts = [len(references[key]) for key in keys]
    texts += [str(ref) for key in keys for ref in references[key]]
    used = tokenizer
    if tokenizer in ("auto", "ptb"):
        try:
            tokens = ptb_tokenize(texts)
            used = "ptb"
        except (RuntimeError, ImportError, OSError, subprocess.SubprocessError) as exc:
            if tokenizer == "ptb":
                raise
            notes.append(f"PTB tokenizer unavailable ({exc}); used the pure-Python imitation")
            used = "python"
    if used == "python":
        tokens = [simple_ptb_tokenize(text) for text in texts]
    res = {key: [tokens[i]] for i, key in enumerate(keys)}
    gts: dict[Hashable, list[str]] = {}
    start = len(keys)
    for key, count in zip(keys, counts, strict=True):
        gts[key] = tokens[start : start + count]
        start += count
    return gts, res, used


def _meteor(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]], notes: list[str]) -> float | None:
    if java_path() is None:
        notes.append("METEOR missing: it needs Java (java is not on PATH)")
        return None
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = None
    try:
        scorer = Meteor()
        score, _ = scorer.compute_score(gts, res)
        return float(score) * 100.0
    except Exception as exc:  # a JVM that fails to start or dies mid-way: report, do not crash the run
        notes.append(f"METEOR missing: the METEOR jar failed ({type(exc).__name__}: {exc})")
        return None
    finally:
        if scorer is not None:
            # pycocoevalcap only stops its JVM when the object is garbage-collected
            process = scorer.meteor_p
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.kill()
            process.wait()


def caption_scores(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    *,
    meteor: bool = True,
    tokenizer: Tokenizer = "auto",
) -> dict[str, Any]:
    """Score generated captions against human references with the COCO caption toolkit.

    ``predictions`` maps an image id to one generated caption; ``references`` maps every predicted id
    to its human captions (extra reference ids are ignored). Returns ``BLEU-1`` .. ``BLEU-4``,
    ``METEOR``, ``ROUGE-L`` and ``CIDEr`` on a 0-100 scale (the toolkit's values x 100, as papers
    print them: CIDEr can pass 100), plus ``n_images``, ``tokenizer`` (``"ptb"`` or ``"python"``) and
    ``notes`` (what was skipped and why). ``METEOR`` is None when Java is missing or ``meteor=False``.

    CIDEr's document frequencies come from the references being scored (as in the COCO toolkit), so it
    needs a corpus: with a single image every n-gram is in every document and CIDEr is 0.

    ``tokenizer="auto"`` uses the Java PTB tokenizer when Java is on PATH, else
    :func:`simple_ptb_tokenize`; ``"ptb"`` insists on Java; ``"python"`` never uses it.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = _check_inputs(predictions, references)
    notes: list[str] = []
    gts, res, used = _tokenize_all(keys, predictions, references, tokenizer, notes)
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores: dict[str, Any] = {f"BLEU-{n}": float(bleu[n - 1]) * 100.0 for n in range(1, 5)}
    if meteor:
        scores["METEOR"] = _meteor(gts, res, notes)
    else:
        scores["METEOR"] = None
        notes.append("METEOR not computed (meteor=False)")
    scores["ROUGE-L"] = float(rouge) * 100.0
    scores["CIDEr"] = float(cider) * 100.0
    notes.append(SPICE_NOTE)
    scores.update({"n_images": len(keys), "tokenizer": used, "notes": notes})
    return scores

"""Splitting long text for speech: the first piece short, so the first word is heard quickly."""

from __future__ import annotations

import re

# After ., !, ?, … (and ; :) followed by a space, or at a line break. "Dr. Smith" splits too; the only
# cost is a short pause.
_SENTENCE_END = re.compile(r"(?<=[.!?…;:])[\"'”’)\]]*\s+|\s*\n\s*")


def _split_long(piece: str, limit: int) -> list[str]:
    """Split one over-long sentence at commas, else at spaces, into parts of at most ``limit`` chars."""
    out: list[str] = []
    while len(piece) > limit:
        cut = piece.rfind(", ", 0, limit)
        cut = cut + 1 if cut > limit // 3 else piece.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit  # one enormous "word" (a URL): cut it anyway
        out.append(piece[:cut].strip())
        piece = piece[cut:].strip()
    if piece:
        out.append(piece)
    return out


def split_for_speech(text: str, first_max: int = 160, max_chars: int = 400) -> list[str]:
    """The text as pieces to synthesize one after another.

    The first piece is one sentence (at most ``first_max`` chars): it is synthesized and playing before
    the rest is synthesized. The rest is grouped into pieces of up to ``max_chars``, fewer pieces meaning
    fewer gaps between player processes.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]
    if not sentences:
        return []
    first, *rest = _split_long(sentences[0], first_max)
    pieces = [first]
    group = ""
    for sentence in [*rest, *sentences[1:]]:
        for part in _split_long(sentence, max_chars):
            if group and len(group) + 1 + len(part) > max_chars:
                pieces.append(group)
                group = part
            else:
                group = f"{group} {part}" if group else part
    if group:
        pieces.append(group)
    return pieces

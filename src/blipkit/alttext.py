"""``blipkit alt-text``: fill in missing alt text of the local images of an HTML or Markdown document.

Documents are parsed with real parsers (``html.parser`` for HTML, markdown-it-py tokens for Markdown),
never with regexes over the whole text, so images inside comments, ``<script>``, ``<textarea>``, code
spans and fenced code are not images and are left alone. The document is then edited by source offsets:
every byte outside the edited attributes/labels stays as it was (line endings, entities, odd quoting,
undecodable bytes included), and an image whose source text does not re-parse exactly as found is
skipped rather than risked.

Inline images (``data:image/...`` URIs) are decoded and captioned like local files. Remote images
(``http:``, ``https:``, ``//host``) and other ``data:`` URIs are reported and left alone.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
# Elements whose content is text, not markup, for a browser (html.parser only knows script and style).
_TEXT_ELEMENTS = frozenset({"textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_NEWLINE = re.compile(r"\r\n|\r|\n")
# Caption openings that alt-text guidelines ask to leave out: a screen reader already says "image".
_FILLER = re.compile(r"^(?:there is |this is )?(?:an? )?(?:picture|photo|photograph|image) of ", re.I)


@dataclass
class ImageRef:
    """One image found in a document, and how to give it alt text."""

    src: str
    alt: str | None  # None: no alt attribute at all
    line: int  # 1-based, for reports
    replace: tuple[int, int]  # source span to replace (start == end: an insertion)
    kind: str  # "html" or "markdown"
    shortcut_ref: str | None = None  # Markdown `![ref]` / `![ref][]`: the label is also the reference


@dataclass
class AltTextReport:
    """What happened to each image of one document, in document order."""

    document: str
    _entries: list[tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=list)

    def add(self, ref: ImageRef | None, action: str, **extra: Any) -> None:
        row: dict[str, Any] = {"document": self.document, "action": action}
        if ref is not None:
            row.update(src=_short_src(ref.src), line=ref.line)
        row.update(extra)
        self._entries.append(((row.get("line", 0), ref.replace[0] if ref else -1), row))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for _, row in sorted(self._entries, key=lambda e: e[0])]

    def count(self, action: str) -> int:
        return sum(1 for _, r in self._entries if r["action"] == action)


# --- HTML -------------------------------------------------------------------------------------------
class _ImageFinder(HTMLParser):
    def __init__(self, text: str, base: int, line_base: int) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.base, self.line_base = base, line_base
        self.line_starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
        self.images: list[ImageRef] = []
        self.skipped: list[tuple[int, str]] = []
        self.open_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _TEXT_ELEMENTS:
            self.open_text.append(tag)
        if tag != "img" or self.open_text:
            return
        line, col = self.getpos()
        start = self.line_starts[line - 1] + col
        raw = self.get_starttag_text() or ""
        if self.text[start : start + len(raw)] != raw:
            self.skipped.append((line, "could not locate the tag in the source"))
            return
        scanned = scan_attributes(raw)
        if scanned is None or [a.name for a in scanned] != [name for name, _ in attrs]:
            self.skipped.append((line, "attributes the parser and the editor read differently"))
            return
        values = dict(reversed(attrs))  # HTML uses the first of duplicated attributes
        alt_attr = next((a for a in scanned if a.name == "alt"), None)
        if alt_attr is None:
            at = start + len("<img")
            span = (at, at)
        else:
            span = (start + alt_attr.start, start + alt_attr.end)
        self.images.append(ImageRef(
            src=(values.get("src") or "").strip(),
            alt=None if alt_attr is None else (values.get("alt") or ""),
            line=self.line_base + line, replace=(self.base + span[0], self.base + span[1]), kind="html",
        ))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _TEXT_ELEMENTS and self.open_text and self.open_text[-1] == tag:
            self.open_text.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open_text:
            while self.open_text and self.open_text.pop() != tag:
                pass


@dataclass
class _Attr:
    name: str  # lower-cased, as html.parser reports it
    start: int  # span of the whole attribute (name through value) in the tag's text
    end: int


def scan_attributes(tag: str) -> list[_Attr] | None:
    """The attributes of a start tag's source text with their spans, following the HTML tokenizer's
    attribute states (quoted, unquoted and valueless values). None if ``tag`` is not a start tag."""
    m = re.match(r"<[a-zA-Z][^\t\n\f\r />]*", tag)
    if not m:
        return None
    out: list[_Attr] = []
    i, n = m.end(), len(tag)
    while i < n:
        while i < n and (tag[i] in " \t\n\r\f/"):
            i += 1
        if i >= n or tag[i] == ">":
            break
        start = i
        i += 1  # the first character may be '=' (a parse error that makes it part of the name)
        while i < n and tag[i] not in " \t\n\r\f/>=":
            i += 1
        name = tag[start:i].lower()
        end = i
        j = i
        while j < n and tag[j] in " \t\n\r\f":
            j += 1
        if j < n and tag[j] == "=":
            j += 1
            while j < n and tag[j] in " \t\n\r\f":
                j += 1
            if j < n and tag[j] in "\"'":
                close = tag.find(tag[j], j + 1)
                if close < 0:
                    return None
                j = close + 1
            else:
                while j < n and tag[j] not in " \t\n\r\f>":
                    j += 1
            end = i = j
        out.append(_Attr(name, start, end))
    return out


def find_html_images(text: str, *, base: int = 0, line_base: int = 0
                     ) -> tuple[list[ImageRef], list[tuple[int, str]]]:
    """``<img>`` elements of an HTML text (offsets shifted by ``base``, lines by ``line_base``), and
    the (line, reason) of those that cannot be edited safely."""
    finder = _ImageFinder(text, base, line_base)
    finder.feed(text)
    finder.close()
    return finder.images, [(line_base + line, why) for line, why in finder.skipped]


def html_alt(alt: str) -> str:
    """An ``alt="..."`` attribute, ASCII-only (character references) so it suits any page encoding."""
    return 'alt="' + html.escape(alt, quote=True).encode("ascii", "xmlcharrefreplace").decode() + '"'


# --- Markdown ---------------------------------------------------------------------------------------
def _markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    original_image = md.inline.ruler.__rules__[md.inline.ruler.__find__("image")].fn
    original_html = md.inline.ruler.__rules__[md.inline.ruler.__find__("html_inline")].fn

    def image(state: Any, silent: bool) -> bool:
        start = state.pos
        is_image = state.src[start] == "!"
        label_end = state.md.helpers.parseLinkLabel(state, start + 1, False) if is_image else -1
        ok = original_image(state, silent)
        if ok and not silent:
            state.env.setdefault("_blipkit_images", []).append(
                (state.env.get("_blipkit_token"), state.src, state.tokens[-1], start, state.pos, start + 2,
                 label_end))
        return ok

    def html_inline(state: Any, silent: bool) -> bool:
        start = state.pos
        ok = original_html(state, silent)
        if ok and not silent:
            state.env.setdefault("_blipkit_html", []).append(
                (state.env.get("_blipkit_token"), state.src, start, state.pos))
        return ok

    def core_inline(state: Any) -> None:
        # markdown-it's own core "inline" rule, plus a note of which block token is being parsed, so that
        # each image can be traced to the block whose source lines it came from. Nested parses (an
        # image's alt text) parse another text: the recorded source tells them apart.
        for token in state.tokens:
            if token.type == "inline":
                if token.children is None:
                    token.children = []
                state.env["_blipkit_token"] = token
                state.md.inline.parse(token.content, state.md, state.env, token.children)
        state.env.pop("_blipkit_token", None)

    md.inline.ruler.at("image", image)
    md.inline.ruler.at("html_inline", html_inline)
    md.core.ruler.at("inline", core_inline)
    return md


class _LineMap:
    """Maps offsets in a block's inline content back to the document (content lines are pieces of
    source lines with container markers and indentation cut off)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] = []
        self.ends: list[int] = []
        pos = 0
        for m in _NEWLINE.finditer(text):
            self.starts.append(pos)
            self.ends.append(m.start())
            pos = m.end()
        self.starts.append(pos)
        self.ends.append(len(text))
        self.cursor: dict[int, int] = {}  # per line: where the last mapped piece ended (table cells)

    def locate(self, content: str, first_line: int) -> Callable[[int], int | None] | None:
        """A function content offset -> document offset, or None when the content cannot be found."""
        pieces: list[tuple[int, int, int]] = []  # (content start, document start, length)
        offset = 0
        for i, piece in enumerate(content.split("\n")):
            line = first_line + i
            if line >= len(self.starts):
                return None
            lo = self.cursor.get(line, self.starts[line])
            at = self.text.find(piece, lo, self.ends[line]) if piece else lo
            if at < 0:
                return None
            pieces.append((offset, at, len(piece)))
            self.cursor[line] = at + len(piece)
            offset += len(piece) + 1

        def to_document(pos: int) -> int | None:
            for c_start, d_start, length in reversed(pieces):
                if c_start <= pos <= c_start + length:
                    return d_start + (pos - c_start)
            return None

        return to_document


def find_markdown_images(text: str) -> tuple[list[ImageRef], list[tuple[int, str]]]:
    """Images of a Markdown text: ``![alt](src)``, reference images and raw HTML ``<img>``."""
    md = _markdown_parser()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    lines = _LineMap(text)
    images: list[ImageRef] = []
    skipped: list[tuple[int, str]] = []
    found = env.get("_blipkit_images", [])
    inline_html = env.get("_blipkit_html", [])
    for tok in tokens:
        if tok.type == "html_block" and tok.map:
            start, end = lines.starts[tok.map[0]], lines.ends[min(tok.map[1], len(lines.ends)) - 1]
            refs, bad = find_html_images(text[start:end], base=start, line_base=tok.map[0])
            images.extend(refs)
            skipped.extend(bad)
            continue
        if tok.type != "inline" or not tok.map or tok.children is None:
            continue
        mine = [f[2:] for f in found if f[0] is tok and f[1] == tok.content]
        mine_html = [h[2:] for h in inline_html if h[0] is tok and h[1] == tok.content]
        if not mine and not mine_html:
            continue
        to_doc = lines.locate(tok.content, tok.map[0])
        if to_doc is None:
            skipped.extend((tok.map[0] + 1, "could not map the paragraph back to the source") for _ in mine)
            continue
        for image_tok, start, end, label_start, label_end in mine:
            a, b = to_doc(start), to_doc(end)
            la, lb = to_doc(label_start), to_doc(label_end)
            line = tok.map[0] + 1 + tok.content.count("\n", 0, start)
            if None in (a, b, la, lb) or text[a:b] != tok.content[start:end]:  # type: ignore[misc]
                skipped.append((line, "the image's source text could not be located exactly"))
                continue
            after = tok.content[label_end + 1 : label_end + 2]
            label = tok.content[label_start:label_end]
            shortcut = None
            span = (la, lb)
            if after != "(" and (after != "[" or tok.content[label_end + 1 : label_end + 3] == "[]"):
                # `![ref]` or `![ref][]`: the label doubles as the reference, so new alt text must
                # turn it into the full form `![alt][ref]`.
                shortcut = label
                span = (la - 2, b)  # type: ignore[operator]
            images.append(ImageRef(
                src=image_tok.attrGet("src") or "", alt=image_tok.content, line=line,
                replace=span, kind="markdown", shortcut_ref=shortcut,  # type: ignore[arg-type]
            ))
        for start, end in mine_html:
            a, b = to_doc(start), to_doc(end)
            if a is None or b is None or text[a:b] != tok.content[start:end]:
                continue
            line_base = tok.map[0] + tok.content.count("\n", 0, start)
            refs, bad = find_html_images(text[a:b], base=a, line_base=line_base)
            images.extend(refs)
            skipped.extend(bad)
    images.sort(key=lambda r: r.replace)
    return images, skipped


def markdown_alt(alt: str) -> str:
    """Alt text as a Markdown image label: punctuation that would start markup is backslash-escaped."""
    return re.sub(r"([\\`*_{}\[\]<>()#!|&])", r"\\\1", alt.replace("\n", " "))


# --- filling ----------------------------------------------------------------------------------------
def document_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    raise ValueError(f"{path}: not an HTML ({', '.join(HTML_SUFFIXES)}) or Markdown "
                     f"({', '.join(MARKDOWN_SUFFIXES)}) document")


def local_image(src: str, doc_dir: Path, root: Path | None = None) -> Path | None:
    """The local file an image ``src`` points to, or None for a remote one (a URL with a scheme other
    than ``file:``, or ``//host/...``). ``/absolute`` sources are taken from ``root`` (the site root;
    default: the document's folder)."""
    src = src.strip()
    if not src or src.startswith("//"):
        return None
    scheme = _SCHEME.match(src)
    if scheme:
        name = scheme.group(0)[:-1].lower()
        if name == "file":
            return Path(urllib.parse.unquote(urllib.parse.urlparse(src).path))
        if len(name) > 1:  # http:, https:, data:...; one letter is a Windows drive, a local path
            return None
    path = urllib.parse.unquote(src.split("#", 1)[0].split("?", 1)[0])
    if path.startswith("/"):
        return (root or doc_dir) / path.lstrip("/")
    return doc_dir / path


def _is_data_uri(src: str) -> bool:
    return src.strip()[:5].lower() == "data:"


def inline_image(src: str) -> bytes | None:
    """The image bytes of a ``data:image/...`` URI (base64 or percent-encoded), or None when ``src`` is
    not an inline image. A data URI whose payload cannot be decoded raises ValueError."""
    src = src.strip()
    if not _is_data_uri(src):
        return None
    header, comma, payload = src[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not params[0].startswith("image/"):
        return None
    if not comma:
        raise ValueError("a data URI without a comma before its data")
    try:
        data = (base64.b64decode("".join(payload.split()), validate=True) if "base64" in params[1:]
                else urllib.parse.unquote_to_bytes(payload))
    except binascii.Error as exc:
        raise ValueError(f"the data URI is not valid base64: {exc}") from exc
    if not data:
        raise ValueError("the data URI holds no data")
    return data


def _short_src(src: str, keep: int = 40) -> str:
    """``src`` for reports: an inline image's data is cut (it can be megabytes)."""
    src = src.strip()
    if _is_data_uri(src) and len(src) > keep:
        return f"{src[:keep]}... ({len(src):,} characters)"
    return src


def clean_caption(caption: str) -> str:
    """A caption as alt text: no "a picture of" opening, first letter capitalised."""
    text = _FILLER.sub("", caption.strip()).strip()
    return text[:1].upper() + text[1:] if text else text


def fill_alt_text(
    text: str,
    kind: str,
    describe: Callable[[Sequence[Path | bytes]], dict[Path | bytes, str | Exception]],
    *,
    doc_dir: Path,
    root: Path | None = None,
    overwrite: bool = False,
    document: str = "<document>",
) -> tuple[str, AltTextReport]:
    """Fill the missing/empty alt text of ``text``'s local and inline images with ``describe``'s captions.

    ``describe`` gets every image that needs alt text, each once: a local file's path, or an inline
    image's bytes; it returns a caption or the exception that made it fail, per image. Existing alt text
    is kept unless ``overwrite``.
    Returns the new text (``text`` itself when nothing changed) and what happened to each image.
    """
    images, skipped = find_html_images(text) if kind == "html" else find_markdown_images(text)
    report = AltTextReport(document)
    for line, why in skipped:
        report.add(None, "skipped", line=line, reason=why)
    todo: list[tuple[ImageRef, Path | bytes]] = []
    for ref in images:
        has_alt = ref.alt is not None and ref.alt.strip() != ""
        if has_alt and not overwrite:
            report.add(ref, "kept", alt=ref.alt)
            continue
        try:
            inline = inline_image(ref.src)
        except ValueError as exc:
            report.add(ref, "failed", error=str(exc))
            continue
        if inline is not None:
            todo.append((ref, inline))
            continue
        path = local_image(ref.src, doc_dir, root)
        if path is None:
            # a data: URI here is not an image (data:text/...)
            report.add(ref, "no-src" if not ref.src else "not-image" if _is_data_uri(ref.src) else "remote")
        elif not path.is_file():
            report.add(ref, "missing", path=str(path))
        else:
            todo.append((ref, path))
    captions = describe(list(dict.fromkeys(p for _, p in todo))) if todo else {}
    edits: list[tuple[int, int, str]] = []
    for ref, path in todo:
        result = captions.get(path)
        if not isinstance(result, str) or not clean_caption(result):
            error = str(result) if result is not None else "no caption"
            where = {"path": str(path)} if isinstance(path, Path) else {}
            report.add(ref, "failed", **where, error=error)
            continue
        alt = clean_caption(result)
        if ref.kind == "html":
            new = html_alt(alt)
            if ref.replace[0] == ref.replace[1]:
                new = " " + new
        elif ref.shortcut_ref is not None:
            new = f"![{markdown_alt(alt)}][{ref.shortcut_ref}]"
        else:
            new = markdown_alt(alt)
        edits.append((*ref.replace, new))
        report.add(ref, "overwritten" if ref.alt and ref.alt.strip() else "filled", alt=alt)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, report

"""Why an image could not be described, in words a listener understands. Qt-free.

The engine's :class:`~assistant.vision.errors.ImageError` messages are precise but written for a log
("cannot decode image: broken data stream when reading image file (OSError)"). This module turns one into
a short spoken reason that says what kind of file it is and what is wrong with it ("it is a damaged PNG
file: its picture data cannot be decoded"), by the error's code, its message and the first and last bytes
of the source (read again here, a few dozen bytes, only after a failure).

:func:`explain` returns the reason and its kind; the kinds are a closed set (:data:`KINDS`) so that a
test can insist that no input ever falls through to a vague "something went wrong".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from assistant.vision import defaults

# What the first bytes of a file say it is: (name said aloud, prefix test). The engine opens the first
# eight; the others are common files that people take for images (or are images the engine leaves out).
_MAGIC: tuple[tuple[str, Any], ...] = (
    ("PNG", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n")),
    ("JPEG", lambda h: h.startswith(b"\xff\xd8\xff")),
    ("GIF", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    ("WebP", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ("TIFF", lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    ("BMP", lambda h: h[:2] == b"BM"),
    ("PPM", lambda h: len(h) > 2 and h[:1] == b"P" and h[1:2] in b"123456" and h[2:3].isspace()),
    ("AVIF", lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"avif", b"avis")),
    ("HEIC", lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1")),
    ("PDF document", lambda h: h.startswith(b"%PDF")),
    ("PostScript", lambda h: h.startswith(b"%!PS")),
    ("SVG drawing", lambda h: b"<svg" in h[:256].lower()),
    ("ICO icon", lambda h: h[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")),
    ("Photoshop", lambda h: h.startswith(b"8BPS")),
    ("JPEG 2000", lambda h: h.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"))),
    ("ZIP archive", lambda h: h.startswith(b"PK\x03\x04")),
    ("QOI", lambda h: h.startswith(b"qoif")),
    ("BLP texture", lambda h: h[:4] in (b"BLP1", b"BLP2")),
    ("DDS texture", lambda h: h.startswith(b"DDS ")),
    ("ICNS icon", lambda h: h.startswith(b"icns")),
    ("SGI", lambda h: h.startswith(b"\x01\xda")),
    ("MSP", lambda h: h[:4] in (b"DanM", b"LinS")),
    ("IM", lambda h: h.startswith(b"Image type:")),
    ("XBM bitmap", lambda h: h.startswith(b"#define")),
    ("DIB bitmap", lambda h: h[:4] in (b"\x28\x00\x00\x00", b"\x0c\x00\x00\x00")),
    ("PCX", lambda h: len(h) > 3 and h[0] == 0x0A and h[1] in (0, 2, 3, 4, 5) and h[2] == 1),
)
OPENED_FORMATS = ("PNG", "JPEG", "GIF", "WebP", "TIFF", "BMP", "PPM", "AVIF")
# What each format's file name usually ends in, to notice a file whose name says something else
_EXTENSIONS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "GIF": (".gif",),
               "WebP": (".webp",), "TIFF": (".tif", ".tiff"), "BMP": (".bmp", ".dib"),
               "PPM": (".ppm", ".pgm", ".pbm", ".pnm"), "AVIF": (".avif",)}
# Where each format's data ends: a file without it was cut off (a download stopped, a full disk)
_TRAILERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9", "GIF": b";"}
_TRUNCATED = re.compile(r"truncat|end of file|premature|unexpected end|not enough data|short read", re.I)
_HEAD, _TAIL = 512, 64

KINDS = frozenset({
    "empty", "missing", "folder", "permission", "not-a-file", "unopenable", "too-large", "too-large-file",
    "out-of-memory", "no-pixels", "url", "truncated", "damaged", "damaged-header", "unsupported-variant",
    "other-format", "text", "unknown-format", "bad-data", "other",
})


@dataclass(frozen=True)
class Reason:
    kind: str  # one of KINDS; "other" only for an error this module does not know yet
    text: str  # the words, without a full stop, to follow "Could not describe NAME: "


def explain(error_code: str | None, error: str | None, source: Any = None) -> Reason:
    """Why ``source`` (a path, bytes or an image in memory) could not be described, given the
    Description's ``error_code`` and ``error`` (the engine's message)."""
    message = _strip_label(str(error or ""), source)
    head, tail, size = _peek(source)
    fmt = _format_of(head)
    noun = "file" if isinstance(source, str | os.PathLike) else "image"
    low = message.lower()

    if error_code == "image_fetch_error":
        return Reason("url", message)
    if error_code == "image_not_found" or "no such file" in low:
        if "no such file" in low or "empty path" in low or "no file name" in low:
            return Reason("missing", "the file is not there any more (no such file)")
        return Reason("unopenable", f"the file cannot be opened ({message.removeprefix('cannot open: ')})")
    if "is a directory" in low:
        return Reason("folder", "it is a folder, not an image file")
    if "permission denied" in low:
        return Reason("permission", "I am not allowed to read that file (permission denied)")
    if "not a regular file" in low:
        return Reason("not-a-file", "it is not a regular file (a device or a pipe, not a picture)")
    if "empty file" in low or (size == 0 and error_code == "image_decode_error"):
        return Reason("empty", f"the {noun} is empty, 0 bytes")
    if error_code == "image_too_large":
        return _too_large(message, fmt)
    if "has no pixels" in low:
        return Reason("no-pixels", f"the {_named(fmt, noun)} says its picture has no pixels")
    if error_code == "image_decode_error":
        return _undecodable(message, fmt, noun, head, tail, source)
    if error_code == "bad_image" and message:
        return Reason("bad-data", _plain(message))
    return Reason("other", _plain(message) or "the image could not be read")


def sentence(label: str, error_code: str | None, error: str | None, source: Any = None) -> str:
    """The whole spoken sentence: "Could not describe NAME: REASON." """
    return f"Could not describe {label}: {explain(error_code, error, source).text}."


# --- the kinds of failure ----------------------------------------------------------------------


def _too_large(message: str, fmt: str | None) -> Reason:
    what = f"the {fmt} image" if fmt in OPENED_FORMATS else "the image"
    if "out of memory" in message:
        return Reason("out-of-memory", f"{what} is too large for the memory this computer has free")
    if "bytes" in message and "pixels" not in message:
        size = None if message.startswith("more than") else _first_int(message)
        limit = _last_int(message)
        said = f" ({_megabytes(size)})" if size else ""
        return Reason("too-large-file", f"the file is too large{said}; I open files of up to "
                                        f"{_megabytes(limit)}" if limit else f"the file is too large{said}")
    dims = re.search(r"(\d+)x(\d+) = ", message)
    pixels = re.search(r"Image size \((\d+) pixels\)", message)
    # Pillow's ceiling is not the one to name: the engine's own, lower, limit is what the user meets
    limit = defaults.MAX_IMAGE_PIXELS if pixels else _last_int(message)
    if dims:
        size = f"{int(dims.group(1)):,} by {int(dims.group(2)):,} pixels"
    elif pixels:
        size = f"{_millions(int(pixels.group(1)))} pixels"
    else:
        size = ""
    reason = f"{what} is too large" + (f": {size}" if size else "")
    if limit:
        reason += f", more than the {_millions(limit)} pixels I can describe"
    if pixels:  # Pillow's own ceiling: a file that claims an absurd size is likely built to exhaust memory
        reason += " (it may be a decompression bomb)"
    return Reason("too-large", reason)


def _undecodable(message: str, fmt: str | None, noun: str, head: bytes, tail: bytes, source: Any) -> Reason:
    low = message.lower()
    misnamed = _misnamed(fmt, source)
    if "not a supported image format" in low:
        if fmt in OPENED_FORMATS:  # the right magic, but the header behind it is broken
            return Reason("damaged-header",
                          f"it is a damaged {fmt} {noun}: its header cannot be read{misnamed}")
        if fmt is not None:
            # said letter by letter, "SVG" takes "an" ("an ess-vee-gee"); a word takes it before a vowel
            spelled = fmt.split()[0].isupper()
            article = "an" if fmt[0] in ("AEFHILMNORSX" if spelled else "AEIOU") else "a"
            return Reason("other-format", f"it is {article} {fmt} {noun}, not a kind of picture I can open")
        if "looks like text" in low or _is_text(head):
            return Reason("text", f"it is a text {noun}, not an image")
        return Reason("unknown-format",
                      "it is not an image I can read: its first bytes match no picture format")
    if _TRUNCATED.search(message) or _cut_off(fmt, tail):
        return Reason("truncated", f"it is a truncated {fmt or 'image'} {noun}: it ends before the picture "
                                   f"is complete{misnamed}")
    detail = re.search(r"unsupported (.+?)(?: \(\w+Error\))?$", message, re.I)
    if detail:
        return Reason("unsupported-variant", f"it is a {fmt or 'kind of'} {noun} of a kind I cannot read "
                                             f"(unsupported {detail.group(1)}){misnamed}")
    where = "its header cannot be read" if "image header" in low else "its picture data cannot be decoded"
    return Reason("damaged", f"it is a damaged {fmt or 'image'} {noun}: {where}{misnamed}")


# --- looking at the bytes ----------------------------------------------------------------------


def _peek(source: Any) -> tuple[bytes, bytes, int | None]:
    """(first bytes, last bytes, size) of a path or bytes; empty and None for anything else."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source[:_HEAD]), bytes(source[-_TAIL:]) if len(source) else b""
        return data[0], data[1], len(source)
    if isinstance(source, str | os.PathLike):
        try:
            with open(os.path.expanduser(source), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(_HEAD)
                f.seek(max(size - _TAIL, 0))
                return head, f.read(_TAIL), size
        except (OSError, ValueError):  # gone, a folder, not allowed: the message says which
            return b"", b"", None
    return b"", b"", None


def _format_of(head: bytes) -> str | None:
    return next((name for name, test in _MAGIC if head and test(head)), None)


def _cut_off(fmt: str | None, tail: bytes) -> bool:
    trailer = _TRAILERS.get(fmt or "")
    if trailer is None or not tail:
        return False
    # JPEG and GIF writers may leave a few padding bytes after the end marker
    return trailer not in tail if fmt != "PNG" else not tail.endswith(trailer)


def _misnamed(fmt: str | None, source: Any) -> str:
    if fmt not in _EXTENSIONS or not isinstance(source, str | os.PathLike):
        return ""
    suffix = os.path.splitext(os.fspath(source))[1].lower()
    known = {ext for exts in _EXTENSIONS.values() for ext in exts}
    if suffix in known and suffix not in _EXTENSIONS[fmt]:
        return f" (its name ends in {suffix}, but it holds {fmt} data)"
    return ""


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\r\n\t" for c in text)


# --- words -------------------------------------------------------------------------------------


def _strip_label(message: str, source: Any) -> str:
    labels = [os.fspath(source)] if isinstance(source, str | os.PathLike) else []
    labels += ["<bytes>", "<PIL.Image>", "<ndarray>"]
    for label in labels:
        if message.startswith(f"{label}: "):
            return message[len(label) + 2:]
    return message


def _plain(message: str) -> str:
    """An engine message without Python's exception names, which mean nothing to a listener."""
    return re.sub(r" \((?:\w+\.)*\w*(?:Error|Exception|Warning)\)", "", message).strip().rstrip(".")


def _named(fmt: str | None, noun: str) -> str:
    return f"{fmt} {noun}" if fmt else noun


def _first_int(text: str) -> int | None:
    found = re.search(r"\d+", text)
    return int(found.group()) if found else None


def _last_int(text: str) -> int | None:
    found = re.findall(r"\d+", text)
    return int(found[-1]) if found else None


def _megabytes(count: int | None) -> str:
    return f"{(count or 0) / (1024 * 1024):.0f} MB"


def _millions(count: int) -> str:
    if count >= 1_000_000:
        value = count / 1_000_000
        return f"{value:,.0f} million" if value >= 10 else f"{value:.1f} million"
    return f"{count:,}"

"""One description of a screen: where the user is, what the captioner sees, and what the text says.

    Firefox, 'Weather - Berlin'. A photo of a city street in the rain. Text: 'Berlin, 12 degrees, …'

The window part and the caption are spoken first (they are ready in well under a second); the text part
follows when OCR has finished, queued behind them, so the first word is never delayed by reading.
"""

from __future__ import annotations

from assistant.ocr.result import TextResult

# How much of the text a description quotes; all of it is one "read text" away.
QUOTE_CHARS = {"brief": 120, "detailed": 600}
QUOTE_PARAGRAPHS = {"brief": 3, "detailed": 12}


def where(app_name: str | None, window_title: str | None) -> str:
    """ "Firefox, 'Weather - Berlin'." from what the platform says about the active window; "" if nothing."""
    app = (app_name or "").strip()
    title = (window_title or "").strip()
    if title and app and app.lower() in title.lower() and title.lower().endswith(app.lower()):
        # "Weather - Berlin - Mozilla Firefox" already names the app at its end
        app = ""
    parts = [p for p in (app[:1].upper() + app[1:] if app else "", f"'{title}'" if title else "") if p]
    return ", ".join(parts) + "." if parts else ""


def quote(text: TextResult, detail: str = "brief") -> str:
    """ "Text: 'first paragraph; second paragraph'…" (cut to the detail level), or "" when there is none."""
    if not text.ok or not text.paragraphs:
        return ""
    limit = QUOTE_CHARS.get(detail, QUOTE_CHARS["brief"])
    paragraphs = text.paragraph_texts
    shown = paragraphs[:QUOTE_PARAGRAPHS.get(detail, QUOTE_PARAGRAPHS["brief"])]
    body = "; ".join(p.rstrip(" .;,:") for p in shown)
    cut = len(shown) < len(paragraphs) or len(body) > limit
    if len(body) > limit:
        body = body[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return f"Text: '{body}'" + ("…" if cut else ".")

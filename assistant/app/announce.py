"""Qt accessibility announcements: new text read by the user's screen reader while our window has focus.

Qt 6.8 added ``QAccessibleAnnouncementEvent`` (AT-SPI ``object:announcement`` on Linux, UIA notifications
on Windows, NSAccessibility announcements on macOS). Screen readers ignore announcements from an app that
is not focused (NVDA does, and a tray app mostly is not), so this is only ever added to the speech route
(:mod:`assistant.speech`), never a replacement for it: call it where new text appears in one of our windows.

It is off unless the user turns on the "speech.announce" setting: the speech output already says every
new text, and a screen reader reading the announcement as well would say it a second time, over the
assistant's own voice (measured with the AT-SPI listener in tests/test_announce_atspi.py). A braille user
turns it on to get the text on their display.
"""

from __future__ import annotations

from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent
from PySide6.QtWidgets import QWidget

SETTING = "speech.announce"
_enabled = False


def set_enabled(on: bool) -> None:
    """Follow the setting (the app calls this at start and when the setting changes)."""
    global _enabled
    _enabled = bool(on)


def announce(widget: QWidget, text: str, *, assertive: bool = False) -> bool:
    """Post ``text`` as an announcement from ``widget`` when its window is the active one; True when it
    was posted. ``assertive`` interrupts what the screen reader is saying (errors); polite waits."""
    text = text.strip()
    if not _enabled or not text or not widget.isVisible() or not widget.window().isActiveWindow():
        return False
    event = QAccessibleAnnouncementEvent(widget, text)
    politeness = QAccessible.AnnouncementPoliteness
    event.setPoliteness(politeness.Assertive if assertive else politeness.Polite)
    QAccessible.updateAccessibility(event)
    return True

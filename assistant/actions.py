"""Every action the user can take, in one registry.

The tray menu, the fallback window, the global hotkeys, ``blip-assistant trigger ACTION``, the user
guide and the tests all read this table, so an action is added or renamed in one place. The
registry is data only: the app's controller maps each id to the code that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    id: str  # the trigger name, `blip-assistant trigger ID`
    label: str  # the menu text; "&" marks the mnemonic
    description: str  # one sentence for the user guide, tooltips and accessible descriptions
    hotkey: str | None = None  # the default global hotkey, "Ctrl+Alt+D" style; None: no default
    category: str = "describe"

    @property
    def plain_label(self) -> str:
        return self.label.replace("&", "")


# Defaults stay on Ctrl+Alt+letter: NVDA, JAWS and Narrator use Insert/CapsLock (and Orca its own
# key) as their modifier, so these combinations do not shadow a screen-reader command.
ACTIONS: tuple[Action, ...] = (
    Action("describe-screen", "Describe &screen",
           "Describe the whole screen (the monitor under the pointer).",
           "Ctrl+Alt+D"),
    Action("describe-region", "Describe &region",
           "Pick a region of the screen by keyboard or mouse and describe it.",
           "Ctrl+Alt+R"),
    Action("describe-window", "Describe active &window", "Describe the window that has the focus.",
           "Ctrl+Alt+W"),
    Action("describe-pointer", "Describe around the &pointer", "Describe the area around the mouse pointer.",
           "Ctrl+Alt+M"),
    Action("describe-clipboard", "Describe the &clipboard image", "Describe the image on the clipboard."),
    Action("open-image", "&Open an image…", "Open an image file and describe it."),
    Action("next-image", "&Next image in the folder", "Describe the next image in the folder of the image "
           "you opened last.", "Ctrl+Alt+PgDown"),
    Action("previous-image", "Pre&vious image in the folder", "Describe the image before it in that "
           "folder.", "Ctrl+Alt+PgUp"),
    Action("read-text", "Read te&xt", "Read the text in the active window aloud, paragraph by paragraph "
           "(trigger with screen, region, pointer or an image file to read those).", "Ctrl+Alt+X",
           category="read"),
    Action("reading-pause", "Pa&use or resume reading",
           "Pause reading the text, or go on from where it stopped (in the results window: Alt+Home).",
           "Ctrl+Alt+P", category="read"),
    Action("reading-next-line", "Next line", "Say the next line of the text (in the results window: "
           "Alt+Down).", category="read"),
    Action("reading-previous-line", "Previous line", "Say the line before (in the results window: Alt+Up).",
           category="read"),
    Action("reading-next-paragraph", "Next paragraph", "Say the next paragraph (in the results window: "
           "Alt+Page Down).", category="read"),
    Action("reading-previous-paragraph", "Previous paragraph", "Say the paragraph before (in the results "
           "window: Alt+Page Up).", category="read"),
    Action("ask", "&Ask about the last image", "Ask a question about the last image described.",
           "Ctrl+Alt+Q", category="ask"),
    Action("repeat", "Repeat &last", "Say the last result again.", "Ctrl+Alt+L", category="speech"),
    Action("stop", "S&top speaking", "Stop speaking at once; a description or answer still being worked out "
           "is not said.", "Ctrl+Alt+S", category="speech"),
    Action("history", "&History", "Open the list of earlier descriptions and answers.", category="window"),
    Action("settings", "S&ettings…", "Open the settings.", category="window"),
    Action("corrections", "Correct&ions…", "Open your corrected captions: edit, delete, export or import "
           "them (in the results window, F2 corrects the last caption).", category="window"),
    Action("personalize", "Personali&ze now", "Teach the model your corrections in the background, and "
           "use the result if it describes your photos better.", category="window"),
    Action("guide", "User &guide", "Open the user guide, which lists every action and hotkey.",
           category="window"),
    Action("about", "A&bout", "Show the assistant's version and where it keeps your data.", category="app"),
    Action("delete-data", "&Delete all my data…", "Delete your history, corrections, personal models and "
           "logs, after asking you to confirm (your settings are kept).", category="app"),
    Action("quit", "&Quit", "Quit the assistant.", category="app"),
)

BY_ID: dict[str, Action] = {a.id: a for a in ACTIONS}


def get(action_id: str) -> Action:
    """The action named ``action_id``; a KeyError that lists the known names otherwise."""
    try:
        return BY_ID[action_id]
    except KeyError:
        raise KeyError(f"unknown action {action_id!r}; known: {', '.join(BY_ID)}") from None


def default_hotkeys() -> dict[str, str]:
    """Action id -> default hotkey, for the actions that have one."""
    return {a.id: a.hotkey for a in ACTIONS if a.hotkey}

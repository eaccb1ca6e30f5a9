"""Hotkey strings in three notations, and clash checks in words."""

from __future__ import annotations

import pytest

from assistant import actions
from assistant.hotkeys import (
    ERROR,
    WARNING,
    Hotkey,
    check,
    normalize,
    parse,
    to_keyboard,
    to_pynput,
    validate,
)


@pytest.mark.parametrize("text", ["Ctrl+Alt+D", "<ctrl>+<alt>+d", "ctrl+alt+d", "alt+ctrl+D",
                                  " Ctrl + Alt + d ", "control+option+d", "<ctrl_l>+<alt_r>+d"])
def test_three_notations_parse_to_one_hotkey(text: str) -> None:
    assert parse(text) == Hotkey(("Ctrl", "Alt"), "D")
    assert normalize(text) == "Ctrl+Alt+D"
    assert to_pynput(text) == "<ctrl>+<alt>+d"
    assert to_keyboard(text) == "ctrl+alt+d"


@pytest.mark.parametrize(("text", "canonical", "pynput", "keyboard"), [
    ("Shift+Ctrl+F5", "Ctrl+Shift+F5", "<ctrl>+<shift>+<f5>", "ctrl+shift+f5"),
    ("ctrl+alt+page up", "Ctrl+Alt+PgUp", "<ctrl>+<alt>+<page_up>", "ctrl+alt+page up"),
    ("<ctrl>+<page_down>", "Ctrl+PgDown", "<ctrl>+<page_down>", "ctrl+page down"),
    ("windows+l", "Meta+L", "<cmd>+l", "windows+l"),
    ("Super+Escape", "Meta+Esc", "<cmd>+<esc>", "windows+esc"),
    ("Ctrl+Alt+Delete", "Ctrl+Alt+Del", "<ctrl>+<alt>+<delete>", "ctrl+alt+delete"),
    ("Alt+Print", "Alt+Print", "<alt>+<print_screen>", "alt+print screen"),
    ("Ctrl+Alt+Return", "Ctrl+Alt+Return", "<ctrl>+<alt>+<enter>", "ctrl+alt+enter"),
    ("ctrl+alt+space", "Ctrl+Alt+Space", "<ctrl>+<alt>+<space>", "ctrl+alt+space"),
    ("Ctrl+Alt+/", "Ctrl+Alt+/", "<ctrl>+<alt>+/", "ctrl+alt+/"),
    ("Ctrl+Alt+7", "Ctrl+Alt+7", "<ctrl>+<alt>+7", "ctrl+alt+7"),
])
def test_formats(text: str, canonical: str, pynput: str, keyboard: str) -> None:
    hotkey = parse(text)
    assert str(hotkey) == canonical
    assert hotkey.to_pynput() == pynput
    assert hotkey.to_keyboard() == keyboard
    assert parse(canonical) == parse(pynput) == parse(keyboard) == hotkey


def test_plus_key_and_keyboard_list_form() -> None:
    hotkey = parse("Ctrl++")
    assert str(hotkey) == "Ctrl++" and hotkey.to_pynput() == "<ctrl>++"
    assert hotkey.keyboard_keys() == ["ctrl", "+"]
    assert parse("<ctrl>++") == hotkey
    with pytest.raises(ValueError, match="cannot name the Plus key"):
        hotkey.to_keyboard()


def test_words_for_speech() -> None:
    assert parse("Ctrl+Alt+PgUp").words == "Control+Alt+Page Up"


@pytest.mark.parametrize(("text", "words"), [
    ("", "is empty"),
    ("Ctrl+", "ends with '+'"),
    ("Ctrl+Alt", "has only modifiers"),
    ("Insert+D", "screen-reader key of NVDA, JAWS, Narrator and Orca"),
    ("CapsLock+D", "screen-reader key"),
    ("Q+D", "puts Q before the last key"),
    ("Hyper+D", "unknown modifier 'Hyper'"),
    ("Ctrl+Alt+Foo", "unknown key 'Foo'"),
    ("Ctrl+Ctrl+D", "names Ctrl twice"),
])
def test_bad_strings_are_value_errors_with_words(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        parse(text)


# -- clash checks -----------------------------------------------------------------------------------


def messages(clashes: list) -> list[str]:
    return [c.message for c in clashes]


def test_registry_defaults_have_no_errors_and_ctrl_alt_l_is_a_linux_warning() -> None:
    defaults = actions.default_hotkeys()
    assert defaults["repeat"] == "Ctrl+Alt+L"  # the registry is reported on, not changed
    for platform in ("linux", "win32", "darwin"):
        assert [c for c in check(defaults, platform) if c.level == ERROR] == []
    linux = check(defaults, "linux")
    lock = [c for c in linux if c.hotkey == "Ctrl+Alt+L"]
    assert len(lock) == 1 and lock[0].level == WARNING and lock[0].actions == ("repeat",)
    assert "locks the screen" in lock[0].message and "'Repeat last'" in lock[0].message


def test_windows_magnifier_and_screen_reader_notes() -> None:
    windows = messages(check(actions.default_hotkeys(), "win32"))
    assert any("Ctrl+Alt+M" in m and "Windows Magnifier" in m for m in windows)
    nvda = check({"describe-screen": "Ctrl+Alt+N"}, "win32")
    assert nvda and "NVDA" in nvda[0].message
    arrows = check({"describe-screen": "Ctrl+Alt+Left"}, "win32")
    assert "table navigation in NVDA and JAWS" in arrows[0].message


def test_two_actions_on_one_key_is_an_error() -> None:
    clashes = check({"describe-screen": "Ctrl+Alt+D", "repeat": "ctrl+alt+d"}, "linux")
    dup = [c for c in clashes if c.level == ERROR]
    assert len(dup) == 1
    assert dup[0].message == ("Ctrl+Alt+D is set for both 'Describe screen' and 'Repeat last'; a hotkey can "
                              "start only one action.")
    assert set(dup[0].actions) == {"describe-screen", "repeat"}


def test_key_without_modifier_is_an_error() -> None:
    clashes = check({"describe-screen": "D", "stop": "Shift+S", "history": "F5", "settings": "F20"}, "linux")
    errors = messages([c for c in clashes if c.level == ERROR])
    assert any("'Describe screen' uses D with no modifier" in m for m in errors)
    assert any("Shift+S with no other modifier" in m for m in errors)
    warnings = messages([c for c in clashes if c.level == WARNING])
    assert any("F5 ('History') has no modifier" in m for m in warnings)
    assert not any("F20" in m for m in errors + warnings)


def test_screen_reader_and_desktop_combinations() -> None:
    insert = check({"ask": "Ctrl+Insert"}, "linux")
    assert len(insert) == 1 and insert[0].level == WARNING and "Orca" in insert[0].message
    cad = check({"stop": "Ctrl+Alt+Delete"}, "win32")
    assert cad[0].level == ERROR and "secure attention" in cad[0].message
    terminal = check({"describe-screen": "Ctrl+Alt+T"}, "linux")
    assert "terminal" in terminal[0].message
    vt = check({"describe-screen": "Ctrl+Alt+F2"}, "linux")
    assert vt[0].level == ERROR and "virtual console" in vt[0].message
    assert check({"describe-screen": "Ctrl+Alt+T"}, "win32") == []


def test_voiceover_keys_on_macos() -> None:
    mac = check({"describe-screen": "Ctrl+Alt+D"}, "darwin")
    assert len(mac) == 1 and "VoiceOver" in mac[0].message
    assert check({"describe-screen": "Ctrl+Alt+Meta+D"}, "darwin") == []


def test_all_platforms_and_a_clean_binding() -> None:
    assert check({"describe-screen": "Ctrl+Shift+F9"}, "all") == []
    every = " ".join(c.message for c in check({"repeat": "Ctrl+Alt+L"}, "all"))
    assert "locks the screen" in every and "Magnifier" in every and "VoiceOver" in every


def test_unparsable_and_unknown_action_bindings_are_errors() -> None:
    clashes = check({"quit": "Ctrl+Foo", "nope": "Ctrl+Alt+Z", "history": ""}, "linux")
    assert [c.level for c in clashes] == [ERROR, ERROR]
    assert any(m.startswith("'Quit': The hotkey 'Ctrl+Foo' has an unknown key") for m in messages(clashes))
    assert any("no action 'nope'" in m and "describe-screen" in m for m in messages(clashes))


def test_validate_keeps_the_good_bindings_and_explains_the_rest() -> None:
    parsed, problems = validate({"repeat": "ctrl+alt+d", "describe-screen": "Ctrl+Alt+D",
                                 "quit": "Ctrl+Foo", "history": "", "nope": "Ctrl+Alt+Z",
                                 "stop": "Ctrl+Alt+S"})
    # The registry's order decides who keeps a shared key: describe-screen comes before repeat.
    assert parsed == {"describe-screen": parse("Ctrl+Alt+D"), "stop": parse("Ctrl+Alt+S")}
    assert problems == [
        "Ctrl+Alt+D is already 'Describe screen', so it was not registered for 'Repeat last'.",
        "Quit: The hotkey 'Ctrl+Foo' has an unknown key 'Foo'; use a letter, a digit, F1 to F24, or a named "
        "key such as Space, Return, Esc, Del, Home, End, PgUp, PgDown or Left.",
        "There is no action 'nope', so Ctrl+Alt+Z was not registered.",
    ]

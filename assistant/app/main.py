"""Starting the tray app: the tray first, the model beside it.

Order matters for the first impression: the tray (or the actions window) is up within about a second.
The engine's imports begin at launch in a thread of their own (:mod:`assistant.vision.runtime.preload`),
then the worker loads the model in its own thread, and "Ready." is spoken when it has. A request made
before that waits in the worker and is answered as soon as the model is loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    import os

    from assistant import ipc, logs

    # The rotating log file in the data folder, and stderr; screen text only with "Debug logging" on
    # (read once here, before Settings reports anything, so its own warnings reach the file too).
    try:
        logs.setup(_debug_log_setting(), os.environ.get("BLIP_ASSISTANT_LOG_LEVEL", "WARNING"))
    except OSError as exc:  # a read-only or full data folder: the app still runs, logging to stderr
        logging.basicConfig(level=logging.WARNING, format=logs.FORMAT)
        log.warning("log file not usable: %s", exc)

    first_action = _initial_action(args)
    server: Any = ipc.TriggerServer(on_action=None)  # bound once the GUI is up: until then "starting"
    trigger_problem = None
    try:
        server.start()
    except ipc.AlreadyRunning:
        # One assistant per user: hand this start's request to the running one and leave.
        action, action_args = first_action or ("show-running", [])
        try:
            reply = ipc.send(action if action != "show-running" else "repeat", action_args)
        except ipc.NotRunning:
            reply = None
        print("The assistant is already running" + ("; your request was passed on." if reply else "."))
        return 0
    except ipc.IpcError as exc:  # the hotkeys and the tray still work without the trigger channel
        log.warning("trigger channel: %s", exc)
        trigger_problem = f"The trigger command cannot reach the assistant: {exc}"
    crash_notice = None
    try:  # after the one-instance check: a second start must not take the running one's crash file
        crash_notice = logs.last_crash()
        logs.trace_crashes()
    except OSError as exc:
        log.warning("crash file not usable: %s", exc)
    from assistant.vision.runtime import preload

    preload.start()  # torch and transformers import beside Qt's start, not after it (issue #27)
    try:
        return _run_app(args, server, first_action, trigger_problem, crash_notice)
    finally:
        server.close()


def _debug_log_setting() -> bool:
    """The "Debug logging" setting straight from the file (the Settings object comes later)."""
    import json

    from assistant import home, logs

    try:
        value = json.loads(home.settings_file().read_text(encoding="utf-8"))["settings"][logs.DEBUG_SETTING]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return value is True


def _initial_action(args: argparse.Namespace) -> tuple[str, list[str]] | None:
    images = [str(Path(p).resolve()) for p in getattr(args, "open_images", None) or []]
    return ("open-image", images[:1]) if images else None


def _run_app(args: argparse.Namespace, server: Any, first_action: tuple[str, list[str]] | None,
             trigger_problem: str | None, crash_notice: str | None = None) -> int:
    from assistant.app.source_cache import keep_no_sources

    keep_no_sources()  # before the first PySide6 import: its import hook would hold every module's source
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication, QFileDialog, QSystemTrayIcon

    from assistant.app.controller import CAPTURE_MAX_SIDE, Controller
    from assistant.app.guide_window import GuideWindow
    from assistant.app.history_window import HistoryWindow
    from assistant.app.images import image_from_mime
    from assistant.app.region_picker import RegionPicker
    from assistant.app.result_window import ResultWindow
    from assistant.app.settings_window import SettingsWindow
    from assistant.app.tray import APP_NAME, ActionsWindow, Tray, app_icon
    from assistant.app.worker import VisionWorker
    from assistant.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)

    class Bridge(QObject):
        """Hotkey and trigger callbacks arrive on their own threads; a signal carries them to this one."""

        action = Signal(str, list)
        speechError = Signal(str)

    bridge = Bridge()
    settings = Settings()
    speaker = _make_speaker(settings, args, bridge)
    worker = VisionWorker(args.model or settings["model.name"], threads=1,
                          device="auto" if settings["model.use_gpu"] else "cpu")

    def clipboard_image() -> Any:
        # the encoded bytes where there are some: a damaged image is then said to be so, specifically
        return image_from_mime(QGuiApplication.clipboard().mimeData())

    def choose_file() -> str | None:
        from assistant.folder_images import image_extensions  # what the engine opens, one list

        patterns = " ".join(f"*{ext}" for ext in sorted(image_extensions()))
        path, _ = QFileDialog.getOpenFileName(None, "Open an image", str(Path.home()), f"Images ({patterns})")
        return path or None

    def pick_region(done: Any) -> None:
        picker = RegionPicker(done, lambda text: speaker.say(text, action="describe-region", interrupt=True))
        pick_region.current = picker  # type: ignore[attr-defined]  # kept alive while it is shown
        picker.start()

    from assistant.capture import Capturer

    # At most 960 px: the model sees 224-384 px (the controller captures at twice that once it knows), and
    # a 1920x1080 screen halves to it with a box filter in ~4 ms, where 1600 px took ~65 ms of Lanczos on
    # every key press (reading text captures at full size).
    def capturer(**options: Any) -> Capturer:
        return Capturer(**{"max_side": CAPTURE_MAX_SIDE, **options})

    from assistant.speech.earcons import Earcons

    earcons = Earcons(lambda: bool(settings["speech.earcons"]), to_folder=_wav_folder(args),
                      speaking=lambda: speaker.busy)
    controller = Controller(settings, worker, speaker, capturer_factory=capturer, pick_region=pick_region,
                            choose_file=choose_file, clipboard_image=clipboard_image, earcons=earcons)
    bridge.action.connect(controller.run_action)
    from assistant import autostart  # "Start at login": the platform's entry follows the setting

    autostart.follow(settings, lambda message: controller.say(message, None, keep=False))
    from assistant.app.model_switch import follow_model  # a model chosen in Settings loads at once

    follow_model(settings, worker, lambda message: controller.say(message, None, keep=False))
    from assistant import logs
    from assistant.app import announce

    announce.set_enabled(settings[announce.SETTING])
    settings.on_change(lambda name, value: name == logs.DEBUG_SETTING and logs.set_debug(bool(value)))
    settings.on_change(lambda name, value: name == announce.SETTING and announce.set_enabled(bool(value)))
    bridge.speechError.connect(lambda message: controller.spoken.emit(_note(message)))
    bridge.speechError.connect(lambda message: log.warning("speech: %s", message))
    server.on_action = lambda action, action_args: bridge.action.emit(action, list(action_args))

    hotkeys = settings.hotkeys()
    result_window = ResultWindow(ask=controller.ask_question, run=lambda a: controller.run_action(a, []),
                                 open_file=controller.open_file, open_image=controller.open_image_data,
                                 last_caption=controller.personal.last_caption,
                                 save_correction=controller.personal.save_correction)
    # "You asked: ..." then "Answer: ...": the transcript reads as a conversation, line by line
    controller.spoken.connect(lambda r: result_window.add(r.text, "Answer" if r.action == "ask" else ""))
    from assistant.app.history_keeper import HistoryKeeper

    history_keeper = HistoryKeeper(settings, controller)  # on disk unless "Keep no history" is on
    history_window = HistoryWindow(lambda: controller.history, history_keeper.forget,
                                   lambda text: speaker.say(text, action="repeat", interrupt=True),
                                   forget_all=history_keeper.forget_all)
    settings_window: list[SettingsWindow] = []
    guide_window = GuideWindow()
    from assistant.app.corrections_window import CorrectionsWindow

    corrections_window = CorrectionsWindow(lambda text: speaker.say(text, action="corrections"),
                                           controller.personal.personalize, controller.personal.stop)
    controller.personal.progress.connect(corrections_window.set_progress)

    def open_window(which: str) -> None:
        if which == "about":
            from assistant.app.about_window import AboutWindow

            about = AboutWindow(worker.model_name)
            open_window.about = about  # type: ignore[attr-defined]  # kept alive while it is shown
            about.show_now()
        elif which == "delete-data":
            from assistant.app import delete_data

            def say_question(text: str) -> None:
                speaker.say(text, action="delete-data", interrupt=True)

            # kept alive while it is shown
            open_window.confirm = delete_data.ask(controller, history_keeper, say_question)  # type: ignore[attr-defined]
        elif which == "guide":
            guide_window.show_now()
        elif which == "ask":
            result_window.show_for("question")
        elif which == "history":
            history_window.show_now()
        elif which == "corrections":
            corrections_window.show_now()
        elif which == "settings":
            window = SettingsWindow(settings, lambda text: speaker.say(text, action="settings"))
            settings_window[:] = [window]
            hotkey_service.pause()  # a hotkey pressed to record it must not run its action too
            window.finished.connect(lambda _result: hotkey_service.resume())
            window.show()
            window.raise_()
            window.activateWindow()

    controller.windowRequested.connect(open_window)

    def run_from_menu(action_id: str) -> None:
        controller.run_action(action_id, [])

    if QSystemTrayIcon.isSystemTrayAvailable():
        shell: Any = Tray(hotkeys, run_from_menu)
        shell.show()
    else:
        shell = ActionsWindow(hotkeys, run_from_menu)
        shell.show()
    import time

    log.info("startup shown_at=%.3f tray=%s", time.time(), isinstance(shell, Tray))
    controller.status.connect(shell.set_status)
    controller.quitRequested.connect(app.quit)

    from assistant.app.live_settings import HotkeyService, apply_live

    # Hotkeys and text size apply as soon as the settings are saved; the tray menu shows the new keys.
    hotkey_service = HotkeyService(settings, lambda keys: _start_hotkeys(keys, bridge, controller),
                                   on_restarted=shell.set_hotkeys)
    apply_live(app, settings, hotkey_service)
    for notice in (crash_notice, settings.notice, trigger_problem):
        if notice:
            controller.say(notice, None, keep=False)
    welcome = _welcome(settings, run_from_menu, speaker)  # noqa: F841 - kept alive while it is shown

    worker.start()
    if first_action is not None:
        QTimer.singleShot(0, lambda: controller.run_action(*first_action))

    def shutdown() -> None:
        hotkey_service.stop()
        history_keeper.close()
        speaker.close()
        worker.close(timeout=2.0)
        controller.close()

    app.aboutToQuit.connect(shutdown)
    return app.exec()


def _welcome(settings: Any, run: Any, speaker: Any) -> Any:
    """The first-run welcome, shown and said (not modal: loading and the hotkeys go on meanwhile)."""
    from assistant.first_run import SHOW_WELCOME

    if not settings[SHOW_WELCOME]:
        return None
    from assistant.app.welcome_window import WelcomeWindow

    window = WelcomeWindow(settings, settings.hotkeys(), run)
    window.show_now()
    speaker.say(window.spoken_text(), action=None, interrupt=False)
    return window


def _make_speaker(settings: Any, args: argparse.Namespace, bridge: Any) -> Any:
    from assistant.speech import make_speaker

    speech_log = getattr(args, "speech_log", None)
    return make_speaker(settings.values, speech_log=Path(speech_log) if speech_log else None,
                       speech_to_wav=_wav_folder(args), on_error=bridge.speechError.emit)


def _wav_folder(args: argparse.Namespace) -> Path | None:
    """``--speech-to-wav DIR``: speech and earcons are written there, and nothing is played."""
    folder = getattr(args, "speech_to_wav", None)
    return Path(folder) if folder else None


def _start_hotkeys(hotkeys: dict[str, str], bridge: Any, controller: Any) -> Any:
    """Listen for the global hotkeys; every problem (no backend, a clash, a bad key) is said in words."""
    from assistant.hotkeys import ERROR, HotkeyError, NoBackend, check, pick_backend

    choice = pick_backend()
    log.info(choice.explain())
    clashes = check(hotkeys)
    for clash in clashes:
        log.warning("hotkeys: %s", clash.message)
    # A binding in error (unparsable, or two actions on one key) is left out; the rest still work.
    # Warnings (a key some desktop also uses) are for the settings window, not for every start.
    broken = {a for c in clashes if c.level == ERROR for a in c.actions}
    problems = [c.message for c in clashes if c.level == ERROR]
    usable = {a: k for a, k in hotkeys.items() if a not in broken}
    # start() registers the good bindings and returns the bad ones in words
    try:
        left_out = choice.backend.start(usable, lambda action_id: bridge.action.emit(action_id, []))
    except HotkeyError as exc:  # the backend looked usable but could not listen after all
        left_out = [str(exc)]
        choice.backend = NoBackend(str(exc))
    problems += [p for p in left_out if p not in problems]
    if isinstance(choice.backend, NoBackend):
        problems.insert(0, choice.backend.advice)
    if problems:
        controller.say(" ".join(problems), None, keep=False)
    return choice.backend


def _note(message: str) -> Any:
    import time

    from assistant.app.controller import Result

    return Result(text=message, action=None, label="speech", at=time.time())

"""The tray's "Delete all my data…": asks first (shown and said), then closes what the app holds open,
deletes (:mod:`assistant.my_data`) and says what was deleted. The app goes on running, on the base model
and with an empty history."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QMessageBox

from assistant import logs, my_data

log = logging.getLogger(__name__)

SPOKEN_QUESTION = f"{my_data.CONFIRM_QUESTION} Alt+Y deletes; Escape keeps everything."


def delete_now(controller: Any, history_keeper: Any) -> str:
    """Delete everything the app keeps about the user; the sentence to say."""
    controller.personal.stop()  # a personalization run writes into personal/
    history_keeper.forget_all()
    history_keeper.close()
    controller.history, controller.last = [], None
    logs.remove_all()
    try:
        deleted = my_data.delete_all()
        message = my_data.summary(deleted)
    except OSError as exc:
        message = f"Not everything could be deleted: {exc}."
    finally:
        try:  # the log starts again, empty
            logs.setup(bool(controller.settings[logs.DEBUG_SETTING]),
                       os.environ.get("BLIP_ASSISTANT_LOG_LEVEL", "WARNING"))
            logs.trace_crashes()
        except OSError:
            log.warning("log file not usable after deleting the data")
        if not controller.settings["history.keep_none"]:
            history_keeper._open(load=False)
    controller.personal.reload_model()  # the personal model is gone: back to the base model
    log.info("user data deleted")
    return message


def ask(controller: Any, history_keeper: Any, say: Callable[[str], None]) -> QMessageBox:
    """Show and say the question; delete only on Yes (No is the default button, Escape is No)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Delete all my data", my_data.CONFIRM_QUESTION,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    box.setAccessibleName("Delete all my data")
    box.setAccessibleDescription(my_data.CONFIRM_QUESTION)

    def clicked(button: Any) -> None:
        if box.standardButton(button) == QMessageBox.StandardButton.Yes:
            controller.say(delete_now(controller, history_keeper), "delete-data", keep=False)
        else:
            controller.say("Nothing was deleted.", "delete-data", keep=False)

    box.buttonClicked.connect(clicked)
    say(SPOKEN_QUESTION)
    box.show()
    box.raise_()
    box.activateWindow()
    return box

"""Listen for AT-SPI ``object:announcement`` events, as Orca does, from outside the app's process.

Run with the SYSTEM Python (Debian's python3-pyatspi), like atspi_probe.py:

    python3 atspi_announce_listener.py SECONDS OUT.jsonl

Each event becomes one JSON line in OUT.jsonl: ``{"type", "text", "politeness", "source", "app"}``. The
line ``{"ready": true}`` is written once the listener is registered.
"""

import json
import sys

import pyatspi
from gi.repository import GLib


def main(argv):
    seconds, path = float(argv[1]), argv[2]
    with open(path, "a", encoding="utf-8") as out:

        def on_event(event):
            try:
                app = event.host_application.name if event.host_application is not None else ""
            except Exception:  # the app may be gone already
                app = ""
            out.write(json.dumps({"type": event.type, "text": str(event.any_data),
                                  "politeness": event.detail1,
                                  "source": event.source.name if event.source is not None else "",
                                  "app": app}) + "\n")
            out.flush()

        pyatspi.Registry.registerEventListener(on_event, "object:announcement")
        out.write(json.dumps({"ready": True}) + "\n")
        out.flush()
        GLib.timeout_add(int(seconds * 1000), lambda: pyatspi.Registry.stop())
        pyatspi.Registry.start()

if __name__ == "__main__":
    main(sys.argv)

"""Read a text field's whole text and caret line over AT-SPI, as a screen reader reads a transcript.

Run with the SYSTEM Python (Debian's python3-pyatspi), like ``atspi_probe.py``; prints one JSON object:

    python3 atspi_text_probe.py "BLIP Assistant" "Results"  -> {"text": "...", "caret_line": "...", ...}

The field is the first node whose role is "text" (or "terminal"/"paragraph") and whose name is the given one.
"""

import json
import sys

import pyatspi


def _find(node, name, depth=0):
    if node is None or depth > 30:
        return None
    try:
        if node.name == name and node.getRoleName() in ("text", "paragraph", "terminal", "document text"):
            return node
        for i in range(node.childCount):
            found = _find(node.getChildAtIndex(i), name, depth + 1)
            if found is not None:
                return found
    except Exception:  # a node that vanished while being read
        return None
    return None


def main(app_name, field_name):
    desktop = pyatspi.Registry.getDesktop(0)
    apps = [desktop.getChildAtIndex(i) for i in range(desktop.childCount)]
    app = next((a for a in apps if a is not None and a.name == app_name), None)
    field = _find(app, field_name) if app is not None else None
    if field is None:
        return {"found": False}
    text = field.queryText()
    whole = text.getText(0, -1)
    line = text.getTextAtOffset(text.caretOffset, pyatspi.TEXT_BOUNDARY_LINE_START)[0]
    return {"found": True, "role": field.getRoleName(), "text": whole, "caret_line": line}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))

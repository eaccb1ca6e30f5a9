"""Read an application's accessibility tree over AT-SPI, as a screen reader does, from outside its process.

Run with the SYSTEM Python (``/usr/bin/python3``, Debian's python3-pyatspi), not the venv's: pyatspi is a
GObject-introspection binding that pip cannot install. It prints one JSON object on stdout:

    python3 atspi_probe.py dump "BLIP Assistant"            -> {"apps": [...], "nodes": [{role, name, ...}]}
    python3 atspi_probe.py press "BLIP Assistant" "Cancel" [WINDOW]  -> {"pressed": "Cancel", ...}
    python3 atspi_probe.py focus "BLIP Assistant" "Speech rate" [WINDOW]  -> {"focused": "Speech rate"}

Only the standard library and pyatspi are used, so the venv's packages never leak into it.
"""

import json
import sys

import pyatspi

MAX_NODES = 3000


def _app(name):
    desktop = pyatspi.Registry.getDesktop(0)
    apps = [desktop.getChildAtIndex(i) for i in range(desktop.childCount)]
    names = [a.name for a in apps if a is not None]
    for app in apps:
        if app is not None and app.name == name:
            return app, names
    return None, names


def _walk(node, depth, path, out):
    if node is None or len(out) >= MAX_NODES:
        return
    try:
        role = node.getRoleName()
        states = node.getState()
        entry = {"role": role, "name": node.name or "", "description": node.description or "",
                 "depth": depth, "path": path,
                 "focusable": states.contains(pyatspi.STATE_FOCUSABLE),
                 "showing": states.contains(pyatspi.STATE_SHOWING)}
        # Qt names a combo box by its value on Linux and links its label by relation; Orca reads both.
        entry["labelled_by"] = [target.name for relation in node.getRelationSet()
                                if relation.getRelationType() == pyatspi.RELATION_LABELLED_BY
                                for target in (relation.getTarget(i) for i in range(relation.getNTargets()))
                                if target is not None]
        try:
            action = node.queryAction()
            entry["actions"] = [action.getName(i) for i in range(action.nActions)]
        except NotImplementedError:
            entry["actions"] = []
        out.append(entry)
        for i in range(node.childCount):
            _walk(node.getChildAtIndex(i), depth + 1, [*path, i], out)
    except Exception as exc:  # a node that vanished while being read: note it, keep walking
        out.append({"role": "error", "name": str(exc), "depth": depth, "path": path})


def dump(app_name):
    app, names = _app(app_name)
    nodes = []
    if app is not None:
        _walk(app, 0, [], nodes)
    return {"apps": names, "found": app is not None, "nodes": nodes}


def press(app_name, control_name, window_name="", verb="press"):
    """Press a button (AT-SPI action "Press"), or with verb "focus" move the focus to any named control."""
    app, names = _app(app_name)
    if app is None:
        return {"apps": names, "pressed": None, "error": "no such application"}

    def in_window(node):
        if not window_name:
            return True
        while node is not None and node.getRoleName() not in ("dialog", "frame", "window"):
            node = node.parent
        return node is not None and node.name == window_name

    def is_target(node):
        return (node is not None and node.name == control_name and in_window(node) and
                (verb == "focus" or node.getRoleName() in ("push button", "button")))

    target = pyatspi.findDescendant(app, is_target, breadth_first=True)
    if target is None:
        return {"apps": names, "pressed": None, "error": f"no control named {control_name!r}"}
    if verb == "focus":
        ok = target.queryComponent().grabFocus()
        return {"apps": names, "focused": control_name if ok else None, "role": target.getRoleName()}
    action = target.queryAction()
    names_ = [action.getName(i) for i in range(action.nActions)]
    index = names_.index("Press") if "Press" in names_ else 0
    ok = action.doAction(index)
    return {"apps": names, "pressed": control_name if ok else None, "actions": names_}


def main(argv):
    verb, app_name = argv[1], argv[2]
    if verb == "dump":
        result = dump(app_name)
    elif verb in ("press", "focus"):
        result = press(app_name, argv[3], argv[4] if len(argv) > 4 else "", verb)
    else:
        raise SystemExit(f"unknown verb {verb!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)

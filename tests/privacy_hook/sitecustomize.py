"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests/test_privacy.py): records every
attempt to reach the network (PEP 578 audit events), so a test can show that none was made."""

import os
import socket
import sys

_LOG = os.environ.get("NETWORK_ATTEMPTS_LOG")
_LOCAL_FAMILIES = {getattr(socket, "AF_UNIX", -1)}


def _hook(event: str, args: tuple) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.bind"):
        sock, address = args[0], args[1]
        if sock.family in _LOCAL_FAMILIES:
            return
        record = f"{event} {sock.family!r} {address!r}"
    elif event == "socket.getaddrinfo":
        record = f"{event} {args[0]!r}"
    else:
        return
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {' '.join(sys.argv[:2])}: {record}\n")


if _LOG:
    sys.addaudithook(_hook)

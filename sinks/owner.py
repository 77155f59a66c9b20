"""The owner file of an embedded engine: which live process serves it, on which loopback port.

`<engine path>/.coex-owner.json` = {pid, port, token}. Mode 0600: the token is what lets a peer
process use the endpoint, so only the same user can.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

OWNER_FILE = ".coex-owner.json"


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    port: int
    token: str


def owner_path(engine_path: str) -> Path:
    return Path(engine_path) / OWNER_FILE


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_owner(engine_path: str) -> Owner | None:
    """The owner named in the file if its process is alive; None when absent, unreadable or stale."""
    try:
        doc = json.loads(owner_path(engine_path).read_text())
        owner = Owner(pid=int(doc["pid"]), port=int(doc["port"]), token=str(doc["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return owner if pid_alive(owner.pid) else None


def write_owner(engine_path: str, owner: Owner) -> None:
    path = owner_path(engine_path)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": owner.pid, "port": owner.port, "token": owner.token}, out)
    os.replace(tmp, path)


def remove_owner(engine_path: str, owner: Owner) -> None:
    """Remove the file only while it still names `owner` (a successor may have replaced it)."""
    path = owner_path(engine_path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if doc.get("pid") == owner.pid and doc.get("token") == owner.token:
        with contextlib.suppress(OSError):
            path.unlink()

"""A peer taking over the embedded engine once the process that served it is gone.

A peer (a second worker, writing through the owner's loopback endpoint: sinks/remote.py) opens the
engine itself when no live process serves it any more, and then serves it in its turn. chdb admits
one process per engine path: it locks the path's `status` file for as long as a process has it
open, and the kernel releases that lock when the process dies, SIGKILL included. So of peers racing
to take over, one opens the engine and the others are refused; they follow the winner's owner file
(`RemoteEngine._follow_owner`) once it serves the engine. An owner that stopped serving but still
has the engine open (a graceful stop flushing its last rows) refuses every peer until it exits.
"""

from __future__ import annotations

from runtime.settings import Settings
from sinks.engine import ClientEngine, readonly_settings
from sinks.remote import RemoteEngine

# In chdb's error when another process has the engine path open.
HELD_ELSEWHERE = "EmbeddedServer"


def take_over(settings: Settings, remote: RemoteEngine) -> ClientEngine | None:
    """The engine `remote` reaches, opened in this process, when no live process serves it; None
    while one does, or while another process has it open. Blocking: call it through a thread."""
    if remote.owner_alive():
        return None
    try:
        return ClientEngine(
            settings.clickhouse_url, settings.clickhouse_database, readonly_settings(settings), create_database=False
        )
    except Exception as exc:
        if HELD_ELSEWHERE not in str(exc):
            raise
        return None

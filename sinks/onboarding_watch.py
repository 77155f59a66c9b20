"""The 24-hour watch over each number's onboarding, read from `onboardings` (issue 29).

The platform accepts the sync requests only within 24 hours of onboarding (`deadline_at`), and
may accept a request and then send nothing. So, per number: the time left while a sync is not yet
requested, and each requested sync flagged `silent` once `silence_s` passed with no webhook of its
kind (no `contacts` row for the contacts sync, no `history_sync` row for the history). Read by
`coex status` and by the worker's metrics (streams/timers.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

QueryRows = Callable[[str], list[tuple[Any, ...]]]
CONTACTS_SYNC = "smb_app_state_sync"  # the sync types as the Graph API names them
HISTORY_SYNC = "history"
SYNC_TYPES = (CONTACTS_SYNC, HISTORY_SYNC)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Watched(NamedTuple):
    phone_number_id: str
    waba_id: str
    onboarded_at: int  # unix seconds
    deadline_at: int
    contacts_requested_at: int  # 0 until requested
    history_requested_at: int
    contacts_arrived: bool  # a webhook of that sync has landed for the number
    history_arrived: bool

    def requested_at(self, sync_type: str) -> int:
        return self.contacts_requested_at if sync_type == CONTACTS_SYNC else self.history_requested_at

    def arrived(self, sync_type: str) -> bool:
        return self.contacts_arrived if sync_type == CONTACTS_SYNC else self.history_arrived

    def deadline_left(self, now: float) -> float | None:
        """Seconds left to request the syncs (negative once passed); None once both are requested."""
        if self.contacts_requested_at and self.history_requested_at:
            return None
        return self.deadline_at - now

    def silent(self, sync_type: str, now: float, silence_s: float) -> bool:
        """Requested more than `silence_s` ago, and no webhook of it yet."""
        at = self.requested_at(sync_type)
        return bool(at) and not self.arrived(sync_type) and now - at > silence_s


def watch_query(database: str) -> str:
    if not _IDENTIFIER.match(database):
        raise ValueError(f"{database!r} is not a plain ClickHouse identifier")
    db = database
    return (
        "SELECT phone_number_id, waba_id, toUnixTimestamp(onboarded_at), toUnixTimestamp(deadline_at), "
        "toUnixTimestamp(contacts_requested_at), toUnixTimestamp(history_requested_at), "
        f"phone_number_id IN (SELECT phone_number_id FROM {db}.contacts), "
        f"phone_number_id IN (SELECT phone_number_id FROM {db}.history_sync) "
        f"FROM {db}.onboardings FINAL ORDER BY phone_number_id"
    )


def read_watch(query_rows: QueryRows, database: str) -> list[Watched]:
    return [
        Watched(str(pnid), str(waba), int(at), int(deadline), int(contacts), int(history), bool(c), bool(h))
        for pnid, waba, at, deadline, contacts, history, c, h in query_rows(watch_query(database))
    ]

"""`coex status`: one line per business, read from ClickHouse.

`fetch_status` (given any `query_rows`) and `format_status` / `format_line` are plain functions,
so `coex dev` prints the same view while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coex.lag import business_lag, fetch_lag
from runtime.redact import redact_url, scrub
from runtime.settings import Settings
from sinks.onboarding_watch import CONTACTS_SYNC, HISTORY_SYNC, Watched, read_watch

QueryRows = Callable[[str], list[tuple[Any, ...]]]
SOURCES: tuple[str, ...] = ("history", "echo", "cloud_api")
OFFBOARDING_EVENTS = frozenset({"PARTNER_REMOVED", "ACCOUNT_OFFBOARDED", "ACCOUNT_DELETED"})
# The partner is back after a removal, the account after an offboarding.
ONBOARDING_EVENTS = frozenset({"PARTNER_ADDED", "ACCOUNT_RECONNECTED"})
LIFECYCLE_EVENTS = OFFBOARDING_EVENTS | ONBOARDING_EVENTS
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(slots=True)
class BusinessStatus:
    phone_number_id: str  # '' for a WABA known only from account events
    waba_id: str = ""
    history_state: str = ""  # in_progress | complete | declined; '' before any history webhook
    progress: int = 0
    chunks_received: int = 0
    messages_received: int = 0  # history messages the sync reported
    messages: dict[str, int] = field(default_factory=dict)  # rows landed in `messages`, by source
    contacts: int = 0  # alive (not removed)
    events: list[str] = field(default_factory=list)  # account_update events, oldest first
    last_update: int | None = None  # unix seconds
    lag: int | None = None  # records still to process on its partition (coex/lag.py); None: unknown
    onboarded_at: int | None = None  # from `onboardings`; None if coex did not onboard it
    deadline_left: float | None = None  # seconds left while a sync is not requested (sinks/onboarding_watch.py)
    contacts_sync: str = "-"  # - (no onboarding) | no | yes (requested) | silent (requested, nothing came)
    history_sync: str = "-"
    undeliverable: int = 0  # `messages` errors 131060
    undeliverable_at: int | None = None

    @property
    def messages_total(self) -> int:
        return sum(self.messages.values())

    @property
    def offboarded(self) -> str:
        """The offboarding event the business is in ('' if none, or if the partner was added back since)."""
        current = ""
        for event in self.events:
            if event in OFFBOARDING_EVENTS:
                current = event
            elif event in ONBOARDING_EVENTS:
                current = ""
        return current

    @property
    def lifecycle(self) -> str:
        """The latest event that connected or disconnected the business ('' if none)."""
        return next((e for e in reversed(self.events) if e in LIFECYCLE_EVENTS), "")

    def watched(self, watch: Watched, now: float, silence_s: float) -> None:
        self.onboarded_at = watch.onboarded_at
        self.deadline_left = watch.deadline_left(now)
        self.contacts_sync = _sync_cell(watch, CONTACTS_SYNC, now, silence_s)
        self.history_sync = _sync_cell(watch, HISTORY_SYNC, now, silence_s)

    def seen(self, at: Any) -> None:
        if at is not None and int(at) > 0:
            self.last_update = max(self.last_update or 0, int(at))


def status_queries(database: str) -> dict[str, str]:
    if not _IDENTIFIER.match(database):
        raise ValueError(f"{database!r} is not a plain ClickHouse identifier")
    db = database
    return {
        "history": (
            "SELECT phone_number_id, waba_id, state, progress, chunks_received, messages_received, "
            f"toUnixTimestamp(updated_at) FROM {db}.history_sync FINAL"
        ),
        "messages": (
            "SELECT phone_number_id, any(waba_id), source, count(), toUnixTimestamp(max(sent_at)) "
            f"FROM {db}.messages FINAL GROUP BY phone_number_id, source"
        ),
        "contacts": (
            "SELECT phone_number_id, any(waba_id), countIf(deleted = 0), toUnixTimestamp(max(changed_at)) "
            f"FROM {db}.contacts FINAL GROUP BY phone_number_id"
        ),
        # groupUniqArray: a redelivered event may be stored twice; arraySort by time keeps the story.
        "events": (
            "SELECT waba_id, arrayMap(x -> x.2, arraySort(groupUniqArray((event_at, event)))), "
            f"toUnixTimestamp(max(event_at)) FROM {db}.account_events GROUP BY waba_id"
        ),
        "undeliverable": (
            f"SELECT phone_number_id, waba_id, errors, toUnixTimestamp(last_at) FROM {db}.undeliverable_messages"
        ),
    }


def _sync_cell(watch: Watched, sync_type: str, now: float, silence_s: float) -> str:
    if watch.silent(sync_type, now, silence_s):
        return "silent"
    return "yes" if watch.requested_at(sync_type) else "no"


def fetch_status(
    query_rows: QueryRows, database: str, now: float | None = None, silence_s: float = 2 * 3600.0
) -> list[BusinessStatus]:
    """Every business any table knows, ordered by phone_number_id. `now` (unix seconds) dates the
    time left to the deadline and which requested syncs are silent (`silence_s` without a webhook)."""
    at = time.time() if now is None else now
    sql = status_queries(database)
    found: dict[str, BusinessStatus] = {}  # by phone_number_id, or "waba:<id>" for a WABA alone

    def business(pnid: Any, waba: Any) -> BusinessStatus:
        row = found.setdefault(str(pnid), BusinessStatus(str(pnid)))
        row.waba_id = row.waba_id or str(waba or "")
        return row

    def waba_alone(waba: Any) -> BusinessStatus:
        return found.setdefault(f"waba:{waba}", BusinessStatus("", str(waba)))

    for pnid, waba, state, progress, chunks, received, updated_at in query_rows(sql["history"]):
        row = business(pnid, waba)
        row.history_state, row.progress = str(state), int(progress)
        row.chunks_received, row.messages_received = int(chunks), int(received)
        row.seen(updated_at)
    for pnid, waba, source, count, last_sent in query_rows(sql["messages"]):
        row = business(pnid, waba)
        row.messages[str(source)] = row.messages.get(str(source), 0) + int(count)
        row.seen(last_sent)
    for pnid, waba, alive, last_changed in query_rows(sql["contacts"]):
        row = business(pnid, waba)
        row.contacts = int(alive)
        row.seen(last_changed)
    for watch in read_watch(query_rows, database):
        business(watch.phone_number_id, watch.waba_id).watched(watch, at, silence_s)
    for pnid, waba, errors, last_at in query_rows(sql["undeliverable"]):
        row = business(pnid, waba)
        row.undeliverable, row.undeliverable_at = int(errors), int(last_at)
    for waba, events, last_event in query_rows(sql["events"]):
        owners = [r for r in found.values() if r.waba_id == str(waba)] or [waba_alone(waba)]
        for row in owners:
            row.events = [str(e) for e in events]
            row.seen(last_event)
    return sorted(found.values(), key=lambda r: (r.phone_number_id == "", r.phone_number_id, r.waba_id))


def _when(at: int | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def _by_source(row: BusinessStatus) -> str:
    known = [str(row.messages.get(s, 0)) for s in SOURCES]
    others = sum(n for s, n in row.messages.items() if s not in SOURCES)
    return "/".join(known) + (f" +{others}" if others else "")


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "passed"
    minutes = int(seconds) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"


HEADER: tuple[str, ...] = (
    "PHONE_NUMBER_ID",
    "WABA_ID",
    "ONBOARDED",
    "DEADLINE",
    "CONTACTS_SYNC",
    "HISTORY_SYNC",
    "HISTORY",
    "PROGRESS",
    "MESSAGES",
    "HISTORY/ECHO/API",
    "CONTACTS",
    "OFFBOARDED",
    "LIFECYCLE",
    "ERR_131060",
    "LAST_UPDATE",
    "LAG",
)
NUMERIC = frozenset(
    HEADER.index(name) for name in ("DEADLINE", "PROGRESS", "MESSAGES", "CONTACTS", "ERR_131060", "LAG")
)


def format_status(rows: Iterable[BusinessStatus]) -> str:
    """A table, one line per business, for a terminal."""
    table = [HEADER]
    for r in rows:
        table.append(
            (
                r.phone_number_id or "?",
                r.waba_id,
                _when(r.onboarded_at),
                _left(r.deadline_left),
                r.contacts_sync,
                r.history_sync,
                r.history_state or "-",
                f"{r.progress}%",
                str(r.messages_total),
                _by_source(r),
                str(r.contacts),
                r.offboarded or "no",
                r.lifecycle or "-",
                str(r.undeliverable),
                _when(r.last_update),
                _lag(r.lag),
            )
        )
    if len(table) == 1:
        return "no businesses yet: nothing in ClickHouse (post webhooks, e.g. `coex simulate`)\n"
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.rjust(w) if i in NUMERIC else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _lag(lag: int | None) -> str:
    return "?" if lag is None else str(lag)


def add_lag(rows: Iterable[BusinessStatus], lag: dict[int, int] | None) -> None:
    """Each business's lag from the lag by partition (None: Kafka did not answer, shown as `?`)."""
    for row in rows:
        row.lag = None if lag is None else business_lag(row.phone_number_id or row.waba_id, lag)


def format_line(row: BusinessStatus) -> str:
    """One compact line for a periodic log (`coex dev`)."""
    parts = [
        row.phone_number_id or f"waba {row.waba_id}",
        f"history {row.history_state or '-'} {row.progress}%",
        f"{row.messages_total} messages ({_by_source(row)})",
        f"{row.contacts} contacts",
    ]
    if row.deadline_left is not None:
        parts.append(
            f"deadline {_left(row.deadline_left)} (syncs: contacts {row.contacts_sync}, history {row.history_sync})"
        )
    else:
        parts.extend(
            f"{name} sync silent"
            for name, cell in (("contacts", row.contacts_sync), ("history", row.history_sync))
            if cell == "silent"
        )
    if row.undeliverable:
        parts.append(f"{row.undeliverable} x 131060 (check the app)")
    parts.append(f"lag {_lag(row.lag)}")
    if row.offboarded:
        parts.append(f"offboarded: {row.offboarded}")
    return " | ".join(parts)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.connect import open_engine  # imported here: clickhouse-connect is slow to import

    try:
        engine = open_engine(settings, create_database=False)
        try:
            rows = fetch_status(
                engine.query_rows, settings.clickhouse_database, silence_s=settings.onboarding_silence_alert_s
            )
        finally:
            engine.close()
    except Exception as exc:  # any failure to reach or read ClickHouse ends the command the same way
        url = settings.clickhouse_url
        sys.stderr.write(scrub(f"coex status: cannot read ClickHouse ({redact_url(url)}): {exc}\n", url))
        return 1
    lag = asyncio.run(fetch_lag(settings)) if rows else None
    add_lag(rows, lag)
    sys.stdout.write(format_status(rows))
    if rows and lag is None:
        sys.stderr.write(f"coex status: LAG unknown, Kafka at {settings.kafka_bootstrap} does not answer\n")
    return 0

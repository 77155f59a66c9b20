"""Erasing one business from ClickHouse (`coex purge`) and reading the purges the workers honour.

Every row of the business goes: the tables keyed by phone_number_id (the writer's `sink_keys`
too), its WABA's `account_events` and the dead letters of its records (Kafka key = the number).
The `purges` row stays: it is the audit of the purge and what keeps the workers from writing the
business's older records again (streams/logic/purged.py).

Rows are counted, then removed with a lightweight DELETE that returns once every part has it
(`lightweight_deletes_sync = 2`): the rows vanish from every read at once, and merges drop them.
Through the owner of an embedded engine this is one narrow operation (`/purge`, a number and a WABA
id checked against ID below), not arbitrary DELETE: the endpoint's writes stay INSERTs otherwise.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import orjson

from schemas.rows import PurgeRow
from sinks.engine import Engine
from sinks.remote import RemoteEngine
from sinks.statements import sql_string
from sinks.tables import SINK_KEYS

# How often a worker reads `purges` (streams/timers.py); `coex purge` waits for it (settle_s).
PURGE_POLL_S = 2.0
# Beyond the poll and the batch age: a poll's query and a batch's write taking their time.
SETTLE_MARGIN_S = 2.0

# Phone number and WABA ids are the platform's numeric strings; this is wider, and still nothing a
# statement could be made of.
ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Tables whose rows name the business's phone_number_id, in the order they are erased.
PHONE_TABLES = (
    "messages",
    "contacts",
    "history_sync",
    "message_statuses",
    "webhook_errors",
    "user_identities",
    "onboardings",
    SINK_KEYS,
)
# Where the business's WABA id may be found, most telling first.
WABA_SOURCES = ("onboardings", "history_sync", "messages", "contacts", "user_identities", "webhook_errors")

DELETE_SETTINGS = {"lightweight_deletes_sync": 2}


class Business(NamedTuple):
    phone_number_id: str
    waba_id: str  # '' when no row of the number names it


def check_id(value: str, what: str) -> str:
    if not ID.fullmatch(value):
        raise ValueError(f"{what} {value!r}: expected the platform's id (letters, digits, '_', '.', '-'; 1 to 64)")
    return value


def settle_s(sink_batch_age_s: float) -> float:
    """How long after its `purges` row is written every worker has read it (a poll, twice over for
    one that was reading as the row landed) and written the rows it buffered before (a batch's age,
    twice over for the commit tick that picks the batch up)."""
    return 2 * PURGE_POLL_S + 2 * sink_batch_age_s + SETTLE_MARGIN_S


def targets(business: Business) -> list[tuple[str, str]]:
    """(table, WHERE condition) of every row of the business."""
    pnid = sql_string(check_id(business.phone_number_id, "phone_number_id"))
    found = [(table, f"phone_number_id = {pnid}") for table in PHONE_TABLES]
    if business.waba_id:
        found.append(("account_events", f"waba_id = {sql_string(check_id(business.waba_id, 'waba_id'))}"))
    found.append(("dead_letters", f"key = {pnid}"))
    return found


def waba_of(engine: Engine, phone_number_id: str) -> str:
    """The WABA id the business's rows name; '' when none does."""
    pnid = sql_string(check_id(phone_number_id, "phone_number_id"))
    for table in WABA_SOURCES:
        rows = engine.query_rows(
            f"SELECT waba_id FROM {engine.database}.{table} WHERE phone_number_id = {pnid} AND waba_id != '' LIMIT 1"
        )
        if rows:
            return str(rows[0][0])
    return ""


def count_rows(engine: Engine, business: Business) -> dict[str, int]:
    """The rows each table holds of the business, every version of a key counted (what DELETE removes)."""
    return {
        table: int(engine.query_rows(f"SELECT count() FROM {engine.database}.{table} WHERE {where}")[0][0])
        for table, where in targets(business)
    }


def delete_rows(engine: Engine, business: Business) -> dict[str, int]:
    """Delete every row of the business on this engine; the rows each table held."""
    counts = count_rows(engine, business)
    for table, where in targets(business):
        if counts[table]:
            engine.command(f"DELETE FROM {engine.database}.{table} WHERE {where}", DELETE_SETTINGS)
    return counts


def erase(engine: Engine, business: Business) -> dict[str, int]:
    """`delete_rows`, through the owner's endpoint when another process owns the embedded engine."""
    if isinstance(engine, RemoteEngine):
        return engine.purge(business.phone_number_id, business.waba_id)
    return delete_rows(engine, business)


def record_purge(engine: Engine, row: PurgeRow) -> None:
    """Write the `purges` row; a later one for the same (number, purged_at) replaces it on merge."""
    engine.insert_raw("purges", PurgeRow._fields, _json_each_row(row), "JSONEachRow")


def read_purges(engine: Engine) -> list[PurgeRow]:
    """The newest purge of each (number, WABA id)."""
    rows = engine.query_rows(
        f"SELECT phone_number_id, toUnixTimestamp(max(purged_at)), toUInt64(0), waba_id "
        f"FROM {engine.database}.purges GROUP BY phone_number_id, waba_id"
    )
    return [PurgeRow(str(p), int(at), int(n), str(w)) for p, at, n, w in rows]


def _json_each_row(row: PurgeRow) -> bytes:
    return orjson.dumps(row._asdict()) + b"\n"

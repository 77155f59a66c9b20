"""`coex status`: rows of six tables and views merged per business, and how they print."""

from __future__ import annotations

import re
from typing import Any

import pytest

from coex.lag import partition_of
from coex.status import BusinessStatus, add_lag, fetch_status, format_line, format_status, status_queries

NOW = 1_761_960_000
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "history_sync": [("111", "w1", "complete", 100, 40, 2000, 1761955200)],
    "messages": [
        ("111", "w1", "history", 2000, 1761955100),
        ("111", "w1", "echo", 5, 1761955300),
        ("222", "w2", "cloud_api", 3, 1761955400),
    ],
    "contacts": [("111", "w1", 17, 1761955000)],
    "account_events": [
        ("w2", ["PARTNER_REMOVED"], 1761956000),
        ("w9", ["ACCOUNT_OFFBOARDED"], 1761957000),
        ("w8", ["PARTNER_REMOVED", "PARTNER_ADDED"], 1761958000),
        ("w7", ["PARTNER_REMOVED", "ACCOUNT_VIOLATION"], 1761958000),
        ("w6", ["ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"], 1761958000),
    ],
    # phone_number_id, waba_id, onboarded_at, deadline_at, contacts/history requested_at, arrived
    "onboardings": [
        ("111", "w1", NOW - 3 * 3600, NOW + 21 * 3600, NOW - 3 * 3600, NOW - 3 * 3600, True, True),
        ("333", "w3", NOW - 3600, NOW + 23 * 3600, NOW - 3000, 0, False, False),
        ("444", "w4", NOW - 3 * 3600, NOW + 21 * 3600, NOW - 3 * 3600, NOW - 3 * 3600, True, False),
    ],
    "undeliverable_messages": [("222", "w2", 4, 1761956500)],
}


def fake_query_rows(sql: str) -> list[tuple[Any, ...]]:
    """The rows of the table or view the query reads FROM first (subqueries aside)."""
    (table,) = [t for t in ROWS if f"FROM db.{t} " in sql or sql.endswith(f"FROM db.{t}")]
    return ROWS[table]


def test_fetch_merges_every_table_per_business() -> None:
    rows = {r.phone_number_id or r.waba_id: r for r in fetch_status(fake_query_rows, "db", NOW)}
    assert list(rows) == [
        "111",
        "222",
        "333",
        "444",
        "w6",
        "w7",
        "w8",
        "w9",
    ]  # a WABA known only from its events: a row each
    first = rows["111"]
    assert (first.history_state, first.progress, first.messages_received) == ("complete", 100, 2000)
    assert first.messages == {"history": 2000, "echo": 5} and first.messages_total == 2005
    assert first.contacts == 17 and not first.offboarded
    assert first.last_update == 1761955300
    assert rows["222"].offboarded == "PARTNER_REMOVED" and rows["222"].events == ["PARTNER_REMOVED"]
    assert rows["w9"].phone_number_id == "" and rows["w9"].offboarded == "ACCOUNT_OFFBOARDED"
    assert rows["w8"].events == ["PARTNER_REMOVED", "PARTNER_ADDED"] and rows["w8"].offboarded == ""


def test_the_lifecycle_is_the_latest_connecting_or_disconnecting_event() -> None:
    rows = {r.phone_number_id or r.waba_id: r for r in fetch_status(fake_query_rows, "db", NOW)}
    assert (rows["w6"].lifecycle, rows["w6"].offboarded) == ("ACCOUNT_RECONNECTED", "")  # reconnection clears it
    assert (rows["w7"].lifecycle, rows["w7"].offboarded) == ("PARTNER_REMOVED", "PARTNER_REMOVED")  # not a violation
    assert rows["w8"].lifecycle == "PARTNER_ADDED" and rows["111"].lifecycle == ""


def test_the_onboarding_watch_and_the_undeliverable_messages_show_per_business() -> None:
    rows = {r.phone_number_id: r for r in fetch_status(fake_query_rows, "db", NOW, silence_s=2 * 3600)}
    done, waiting, silent = rows["111"], rows["333"], rows["444"]
    assert (done.onboarded_at, done.deadline_left, done.contacts_sync, done.history_sync) == (
        NOW - 3 * 3600, None, "yes", "yes")  # fmt: skip
    assert (waiting.deadline_left, waiting.contacts_sync, waiting.history_sync) == (23 * 3600, "yes", "no")
    assert (silent.contacts_sync, silent.history_sync) == ("yes", "silent")  # no history webhook in 3 h
    assert (rows["222"].undeliverable, rows["222"].undeliverable_at, rows["222"].contacts_sync) == (4, 1761956500, "-")
    header, *lines = format_status(rows.values()).splitlines()
    names = re.split(r"\s{2,}", header)
    table = {cells[0]: dict(zip(names, cells, strict=True)) for cells in (re.split(r"\s{2,}", line) for line in lines)}
    assert names[:6] == ["PHONE_NUMBER_ID", "WABA_ID", "ONBOARDED", "DEADLINE", "CONTACTS_SYNC", "HISTORY_SYNC"]
    assert table["333"]["ONBOARDED"] == "2025-11-01 00:20:00Z"
    assert [table["333"][k] for k in ("DEADLINE", "CONTACTS_SYNC", "HISTORY_SYNC")] == ["23h00m", "yes", "no"]
    assert [table["444"][k] for k in ("DEADLINE", "CONTACTS_SYNC", "HISTORY_SYNC")] == ["-", "yes", "silent"]
    assert [table["222"][k] for k in ("OFFBOARDED", "LIFECYCLE", "ERR_131060")] == ["PARTNER_REMOVED"] * 2 + ["4"]
    assert "deadline 23h00m (syncs: contacts yes, history no)" in format_line(waiting)
    assert "history sync silent" in format_line(silent) and "4 x 131060" in format_line(rows["222"])


def test_queries_read_deduplicated_tables_and_refuse_odd_database_names() -> None:
    sql = status_queries("coex")
    assert "coex.messages FINAL" in sql["messages"] and "coex.history_sync FINAL" in sql["history"]
    with pytest.raises(ValueError):
        status_queries("coex; DROP TABLE x")


def test_format_status_is_a_table_with_one_line_per_business() -> None:
    text = format_status(fetch_status(fake_query_rows, "db", NOW))
    lines = text.splitlines()
    assert lines[0].startswith("PHONE_NUMBER_ID") and len(lines) == 9
    assert "2005" in lines[1] and "2000/5/0" in lines[1] and "2025-11-01 00:01:40Z" in lines[1]
    assert "PARTNER_REMOVED" in lines[2]
    assert format_status([]).startswith("no businesses yet")


def test_format_line_is_compact() -> None:
    row = BusinessStatus("111", "w1", "in_progress", 42, 3, 500, {"history": 480}, 9, ["PARTNER_REMOVED"], None)
    line = format_line(row)
    assert line.startswith("111 | history in_progress 42% | 480 messages (480/0/0) | 9 contacts")
    assert line.endswith("lag ? | offboarded: PARTNER_REMOVED")


def test_each_business_shows_the_lag_of_its_partition_and_unknown_without_kafka() -> None:
    rows = fetch_status(fake_query_rows, "db")
    by_partition = {p: 0 for p in range(6)}
    by_partition[partition_of("111", 6)] = 7
    add_lag(rows, by_partition)
    lags = {r.phone_number_id or r.waba_id: r.lag for r in rows}
    assert lags["111"] == 7 and all(lag == (7 if partition_of(k, 6) == partition_of("111", 6) else 0)
                                    for k, lag in lags.items())  # fmt: skip
    assert format_status(rows).splitlines()[0].endswith("LAG")
    assert format_line(next(r for r in rows if r.phone_number_id == "111")).endswith("lag 7")
    add_lag(rows, None)
    assert all(r.lag is None for r in rows) and "lag ?" in format_line(rows[0])

"""`coex status`: rows of four tables merged per business, and how they print."""

from __future__ import annotations

from typing import Any

import pytest

from coex.lag import partition_of
from coex.status import BusinessStatus, add_lag, fetch_status, format_line, format_status, status_queries

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
    ],
}


def fake_query_rows(sql: str) -> list[tuple[Any, ...]]:
    (table,) = [t for t in ROWS if f"db.{t} " in sql or sql.endswith(f"db.{t}")]
    return ROWS[table]


def test_fetch_merges_every_table_per_business() -> None:
    rows = {r.phone_number_id or r.waba_id: r for r in fetch_status(fake_query_rows, "db")}
    assert list(rows) == ["111", "222", "w8", "w9"]  # a WABA known only from its events: a row each
    first = rows["111"]
    assert (first.history_state, first.progress, first.messages_received) == ("complete", 100, 2000)
    assert first.messages == {"history": 2000, "echo": 5} and first.messages_total == 2005
    assert first.contacts == 17 and not first.offboarded
    assert first.last_update == 1761955300
    assert rows["222"].offboarded == "PARTNER_REMOVED" and rows["222"].events == ["PARTNER_REMOVED"]
    assert rows["w9"].phone_number_id == "" and rows["w9"].offboarded == "ACCOUNT_OFFBOARDED"
    assert rows["w8"].events == ["PARTNER_REMOVED", "PARTNER_ADDED"] and rows["w8"].offboarded == ""


def test_queries_read_deduplicated_tables_and_refuse_odd_database_names() -> None:
    sql = status_queries("coex")
    assert "coex.messages FINAL" in sql["messages"] and "coex.history_sync FINAL" in sql["history"]
    with pytest.raises(ValueError):
        status_queries("coex; DROP TABLE x")


def test_format_status_is_a_table_with_one_line_per_business() -> None:
    text = format_status(fetch_status(fake_query_rows, "db"))
    lines = text.splitlines()
    assert lines[0].startswith("PHONE_NUMBER_ID") and len(lines) == 5
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

"""The ClickHouse sink on the embedded engine: schema, batch writer, statuses, `coex sql`, endpoint."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime.settings import Settings
from schemas.rows import (
    AccountEventRow,
    ContactRow,
    DeadLetterRow,
    HistorySyncRow,
    MessageRow,
    StatusRow,
    WebhookErrorRow,
    change_key,
    contact_version,
    message_version,
)
from sinks import metrics
from sinks.connect import open_engine
from sinks.encode import FORMAT, columns_to_arrow, rows_to_arrow, serialize
from sinks.engine import Engine
from sinks.migrate import apply_migrations
from sinks.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL
from sinks.remote import RemoteEngine
from sinks.statements import StatementRefused
from sinks.tables import ROW_TYPES, SinkKeyRow
from sinks.writer import BatchWriter
from streams.processor import Processor, Record
from tests.doubles import DictStore
from tests.integration.owner_kit import OWNER
from tests.unit.streams.test_processor import records

ROOT = Path(__file__).resolve().parents[2]
PNID = "106540352242922"
WABA = "102290129340398"
T0 = 1_739_230_955

CONTRACT_TYPES: dict[str, dict[str, str]] = {
    "messages": {
        "phone_number_id": "String",
        "waba_id": "String",
        "message_id": "String",
        "contact_wa_id": "String",
        "direction": "LowCardinality(String)",
        "source": "LowCardinality(String)",
        "type": "LowCardinality(String)",
        "text": "String",
        "media_id": "String",
        "media_mime_type": "String",
        "status": "LowCardinality(String)",
        "sent_at": "DateTime('UTC')",
        "history_phase": "Nullable(UInt8)",
        "history_chunk_order": "Nullable(UInt32)",
        "raw": "String",
    },
    "contacts": {
        "phone_number_id": "String",
        "contact_wa_id": "String",
        "full_name": "String",
        "first_name": "String",
        "deleted": "UInt8",
        "changed_at": "DateTime('UTC')",
    },
    "history_sync": {
        "phone_number_id": "String",
        "state": "LowCardinality(String)",
        "progress": "UInt8",
        "phases_complete": "Array(UInt8)",
        "chunks_received": "UInt32",
        "messages_received": "UInt64",
        "error_code": "Nullable(UInt32)",
        "updated_at": "DateTime('UTC')",
    },
    "account_events": {"waba_id": "String", "phone_number": "String", "event_at": "DateTime('UTC')"},
    "dead_letters": {"key": "String", "error": "String", "raw": "String"},
}


def message(mid: str, *, complete: bool = True, status: str = "", **changes: Any) -> MessageRow:
    row = MessageRow(
        phone_number_id=PNID,
        waba_id=WABA,
        message_id=mid,
        contact_wa_id="16505551234",
        direction="outbound",
        source="history",
        type="image" if complete else "media_placeholder",
        text="a caption" if complete else "",
        media_id="media-1" if complete else "",
        media_mime_type="image/jpeg" if complete else "",
        status=status,
        sent_at=T0,
        history_phase=1,
        history_chunk_order=2,
        raw=f'{{"id": "{mid}"}}',
        context_id="",
        error_code=None,
        version=message_version(complete, status),
    )
    return row._replace(**changes)


def status(mid: str, value: str, *, at: int = T0 + 60, error_code: int | None = None) -> StatusRow:
    return StatusRow(PNID, mid, "16505551234", value, at, error_code, f'{{"status": "{value}"}}')


@pytest.fixture
def settings(clickhouse_url: str, ch_database: str) -> Settings:
    return Settings(clickhouse_url=clickhouse_url, clickhouse_database=ch_database)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_engine(settings)
    apply_migrations(engine, settings.clickhouse_database)
    try:
        yield engine
    finally:
        engine.close()


def writer_on(engine: Engine, **kwargs: Any) -> BatchWriter:
    options: dict[str, Any] = {"batch_rows": 1000, "batch_age_s": 60.0, "retry_max_s": 0.05, **kwargs}
    return BatchWriter(engine, **options)


async def write(engine: Engine, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    writer = writer_on(engine)
    writer.add(table, rows)
    await writer.flush()


def final_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    return engine.query_rows(f"{sql} SETTINGS final = 1")


def test_migrate_is_idempotent_and_recorded(engine: Engine, settings: Settings) -> None:
    assert apply_migrations(engine, settings.clickhouse_database) == []
    recorded = final_rows(engine, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.name) for m in MIGRATIONS]


def test_tables_have_the_contract_columns_in_row_order(engine: Engine, settings: Settings) -> None:
    rows = engine.query_rows(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position",
        parameters={"db": settings.clickhouse_database},
    )
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table, name, type_ in rows:
        by_table.setdefault(table, []).append((name, type_))
    for table, row_type in ROW_TYPES.items():
        assert [name for name, _ in by_table[table]] == list(row_type._fields), table  # type: ignore[attr-defined]
    for table, expected in CONTRACT_TYPES.items():
        actual = dict(by_table[table])
        assert {name: actual[name] for name in expected} == expected, table
    assert dict(by_table["dead_letters"])["failed_at"].startswith("DateTime64")
    assert {"threads", "sync_summary"} <= set(by_table)


def account_event(raw: str, *, at: int = T0) -> AccountEventRow:
    return AccountEventRow(WABA, "", "ACCOUNT_VIOLATION", at, "", raw, change_key(raw))


async def test_each_change_of_an_entry_is_an_account_event_and_a_replay_adds_none(engine: Engine) -> None:
    spam, scam = '{"violation_type": "SPAM"}', '{"violation_type": "SCAM"}'
    for _ in range(2):
        await write(engine, "account_events", [account_event(spam), account_event(scam)])
    assert final_rows(engine, "SELECT raw FROM account_events ORDER BY raw") == [(scam,), (spam,)]


def test_a_version_2_schema_upgrades_and_keeps_its_account_events(settings: Settings) -> None:
    engine = open_engine(settings)
    try:
        db = settings.clickhouse_database
        engine.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        engine.command(SCHEMA_MIGRATIONS_DDL.format(db=db))
        for migration in MIGRATIONS[:2]:
            for statement in migration.statements:
                engine.command(statement.format(db=db))
            engine.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, '')")
        engine.command(f"INSERT INTO {db}.account_events VALUES ('{WABA}', '', 'PARTNER_REMOVED', {T0}, '', '{{}}')")
        assert apply_migrations(engine, db) == [f"{m.version} {m.name}" for m in MIGRATIONS[2:]]
        assert engine.query_rows("SELECT event, change_key FROM account_events") == [("PARTNER_REMOVED", 0)]
    finally:
        engine.close()


async def test_rows_of_every_table_land_and_read_back(engine: Engine) -> None:
    samples: dict[str, tuple[Any, ...]] = {
        "messages": message("wamid.every", status="read"),
        "contacts": ContactRow(
            PNID, "16505551234", "Ana Lima", "Ana", 0, T0, WABA, contact_version(T0, False), user_key="16505551234"
        ),
        "history_sync": HistorySyncRow(PNID, WABA, "in_progress", 50, [0, 1], 4, 1200, None, T0, 7),
        "account_events": AccountEventRow(
            WABA, "+1 650-555-1234", "PARTNER_REMOVED", T0, '{"reason": "x"}', "{}", change_key("{}")
        ),
        "dead_letters": DeadLetterRow(
            "coex.history", 3, 17, PNID, "history.value: expected object", "{}", round(time.time(), 3)
        ),
        "message_statuses": status("wamid.every", "read"),
        "webhook_errors": WebhookErrorRow(PNID, WABA, "messages", "", 131060, "t", "m", "d", T0, "{}"),
    }
    writer = writer_on(engine)
    for table, row in samples.items():
        writer.add(table, [row])
    assert writer.buffered_rows == len(samples)
    await writer.flush()
    assert writer.buffered_rows == 0
    for table, row in samples.items():
        (back,) = final_rows(engine, f"SELECT * FROM {table}")
        as_sent = [value.timestamp() if hasattr(value, "timestamp") else value for value in back]
        assert as_sent == list(row), table


async def test_columns_without_a_value_that_tells_their_type_land(engine: Engine) -> None:
    """A batch whose nullable or array column holds only NULLs or empty arrays (no Arrow type to infer)."""
    await write(engine, "messages", [message("wamid.bare", history_phase=None, history_chunk_order=None)])
    await write(engine, "history_sync", [HistorySyncRow(PNID, WABA, "in_progress", 0, [], 0, 0, None, T0, 1)])
    assert final_rows(engine, "SELECT history_phase, history_chunk_order, error_code FROM messages") == [
        (None, None, None)
    ]
    assert final_rows(engine, "SELECT phases_complete, error_code FROM history_sync") == [([], None)]


async def test_replayed_batches_leave_one_row_per_key(engine: Engine) -> None:
    rows = [message(f"wamid.replay{i}", status="delivered", sent_at=T0 - i * 86_400 * 7) for i in range(40)]
    contacts = [
        ContactRow(
            PNID, f"1650555{i:04d}", "N", "N", 0, T0, WABA, contact_version(T0, False), user_key=f"1650555{i:04d}"
        )
        for i in range(5)
    ]
    for _ in range(2):  # the same batch again, as a worker that restarted before committing writes it
        writer = writer_on(engine)
        writer.add("messages", rows)
        writer.add("contacts", contacts)
        await writer.flush()
    assert final_rows(engine, "SELECT count() FROM messages") == [(40,)]
    await write(engine, "messages", rows[:25])  # replayed with other batch boundaries
    await write(engine, "messages", rows[25:])
    await write(engine, "contacts", contacts[::-1])
    assert final_rows(engine, "SELECT count(), uniqExact(message_id) FROM messages") == [(40, 40)]
    assert final_rows(engine, "SELECT count() FROM contacts") == [(5,)]


async def test_rows_handed_over_in_arrow_land_with_the_row_tuples_of_the_same_flush(engine: Engine) -> None:
    """A helper process hands history rows over as Arrow (streams/prepare.py): they land with the
    row tuples of the same flush, and a key's rows among both collapse by version as ever (rows of
    equal version in one flush leave either: ClickHouse keeps no order within an insert)."""
    text = {"type": "text", "media_id": "", "media_mime_type": ""}
    plain = [message(f"wamid.arrow{i}", status="delivered", text=f"t{i}", **text) for i in range(3)]
    writer = writer_on(engine)
    writer.add("messages", [message("wamid.arrow0", text="older status", **text)])
    writer.add_encoded("messages", rows_to_arrow(MessageRow, plain))
    newer = message("wamid.arrow2", status="read", text="newer status", **text)
    writer.add("messages", [message("wamid.tuple"), newer])
    assert writer.buffered_rows == 6
    await writer.flush()
    assert final_rows(engine, "SELECT message_id, text FROM messages ORDER BY message_id") == [
        ("wamid.arrow0", "t0"),
        ("wamid.arrow1", "t1"),
        ("wamid.arrow2", "newer status"),
        ("wamid.tuple", "a caption"),
    ]
    assert writer.buffered_rows == 0
    with pytest.raises(ValueError, match="schema"):
        writer.add_encoded("messages", columns_to_arrow(SinkKeyRow, [["t"], [PNID], ["wamid.x"]]))


@pytest.mark.parametrize("placeholder_first", [True, False])
async def test_placeholder_then_enriched_reads_as_enriched_in_any_order(
    engine: Engine, placeholder_first: bool
) -> None:
    placeholder = message("wamid.media", complete=False, status="delivered")
    enriched = message("wamid.media", complete=True, status="delivered")
    for row in (placeholder, enriched) if placeholder_first else (enriched, placeholder):
        await write(engine, "messages", [row])
    assert final_rows(engine, "SELECT type, media_id, media_mime_type, text, status FROM messages") == [
        ("image", "media-1", "image/jpeg", "a caption", "delivered")
    ]


async def test_a_status_that_reached_the_placeholder_stays_on_its_enriched_row(engine: Engine) -> None:
    await write(engine, "messages", [message("wamid.media", complete=False, status="delivered")])
    await write(engine, "message_statuses", [status("wamid.media", "read")])
    await write(engine, "messages", [message("wamid.media", complete=True, status="delivered")])
    assert final_rows(engine, "SELECT type, media_id, status FROM messages") == [("image", "media-1", "read")]


async def test_statuses_raise_but_never_lower(engine: Engine) -> None:
    writer = writer_on(engine)
    writer.add("messages", [message("wamid.s1", status="sent"), message("wamid.s2", status="sent")])
    writer.add_statuses([status("wamid.s1", "delivered")])
    await writer.flush()
    writer.add_statuses([status("wamid.s1", "read"), status("wamid.s2", "failed", error_code=131026)])
    await writer.flush()
    writer.add_statuses([status("wamid.s1", "delivered", at=T0 + 900), status("wamid.s1", "sent")])
    await writer.flush()
    rows = final_rows(engine, "SELECT message_id, status, error_code, version, type FROM messages ORDER BY message_id")
    assert rows == [
        ("wamid.s1", "read", None, message_version(True, "read"), "image"),
        ("wamid.s2", "failed", 131026, message_version(True, "failed"), "image"),
    ]
    assert final_rows(engine, "SELECT count() FROM message_statuses") == [(4,)]  # one per (message, status)


async def test_a_status_before_its_message_is_applied_when_the_message_lands(engine: Engine) -> None:
    writer = writer_on(engine)
    writer.add_statuses([status("wamid.early", "read")])
    await writer.flush()
    assert final_rows(engine, "SELECT count() FROM messages") == [(0,)]
    writer.add("messages", [message("wamid.early", complete=False, status="sent", source="echo")])
    await writer.flush()
    assert final_rows(engine, "SELECT status, type FROM messages") == [("read", "media_placeholder")]
    writer.add("messages", [message("wamid.early", complete=True, status="", source="echo")])
    await writer.flush()
    assert final_rows(engine, "SELECT status, type, version FROM messages") == [
        ("read", "image", message_version(True, "read"))
    ]
    summary = final_rows(engine, "SELECT messages, last_status FROM threads")
    assert summary == [(1, "read")]


async def test_a_status_is_carried_onto_the_newest_of_several_unmerged_rows(engine: Engine) -> None:
    # Three flushes, three parts: the carry finds the key in each and rewrites the newest row.
    await write(engine, "messages", [message("wamid.m", complete=False, status="sent", source="echo")])
    await write(engine, "messages", [message("wamid.m", complete=True, status="sent", source="echo")])
    await write(engine, "messages", [message(f"wamid.other{i}", source="echo") for i in range(50)])
    await write(engine, "message_statuses", [status("wamid.m", "delivered"), status("wamid.other7", "read")])
    rows = final_rows(engine, "SELECT message_id, type, media_id, status FROM messages WHERE status != ''")
    assert sorted(rows) == [("wamid.m", "image", "media-1", "delivered"), ("wamid.other7", "image", "media-1", "read")]


async def test_views_summarize_per_business(engine: Engine) -> None:
    writer = writer_on(engine)
    writer.add("messages", [message("wamid.v1"), message("wamid.v2", source="echo", contact_wa_id="1999")])
    writer.add(
        "contacts",
        [
            ContactRow(PNID, "1", "A", "A", 0, T0, WABA, contact_version(T0, False), user_key="1"),
            ContactRow(PNID, "2", "B", "B", 1, T0, WABA, contact_version(T0, True), user_key="2"),
        ],
    )
    writer.add("history_sync", [HistorySyncRow(PNID, WABA, "complete", 100, [0, 1, 2], 9, 1, None, T0, 1)])
    await writer.flush()
    rows = engine.query_rows(
        "SELECT phone_number_id, history_state, history_messages, echo_messages, messages, contacts_alive "
        "FROM sync_summary"
    )
    assert rows == [(PNID, "complete", 1, 1, 2, 1)]
    assert engine.query_rows("SELECT count() FROM threads") == [(2,)]


class FlakyEngine:
    """The real engine behind inserts that fail `failures` times, before or after writing."""

    def __init__(self, engine: Engine, failures: int, *, fail_after_write: bool = False) -> None:
        self.engine = engine
        self.database = engine.database
        self.failures = failures
        self.fail_after_write = fail_after_write
        self.calls = 0

    def insert_arrow(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.failures and not self.fail_after_write:
            self.failures -= 1
            raise ConnectionRefusedError("ClickHouse is down")
        self.engine.insert_arrow(*args, **kwargs)
        if self.failures:
            self.failures -= 1
            raise TimeoutError("written, but the answer was lost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.mark.parametrize("fail_after_write", [False, True])
async def test_rows_survive_an_outage_and_land_once(engine: Engine, fail_after_write: bool) -> None:
    flaky = FlakyEngine(engine, failures=4, fail_after_write=fail_after_write)
    writer = writer_on(flaky)
    rows = [message(f"wamid.down{i}") for i in range(30)]
    retries_before = metrics.RETRIES._value.get()
    writer.add("messages", rows)
    await asyncio.wait_for(writer.flush(), timeout=30)
    assert flaky.calls > 4
    assert metrics.RETRIES._value.get() - retries_before == 4
    assert metrics.CLICKHOUSE_UP._value.get() == 1
    assert engine.query_rows("SELECT count() FROM messages") == [(30,)]  # no FINAL: written once


async def test_a_cancelled_flush_keeps_its_rows(engine: Engine) -> None:
    flaky = FlakyEngine(engine, failures=10**9)
    writer = writer_on(flaky, retry_max_s=0.02)
    writer.add("messages", [message("wamid.kept")])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(writer.flush(), timeout=0.3)
    assert metrics.CLICKHOUSE_UP._value.get() == 0
    assert writer.buffered_rows == 1
    flaky.failures = 0
    await writer.flush()
    assert writer.buffered_rows == 0
    assert final_rows(engine, "SELECT message_id FROM messages") == [("wamid.kept",)]


def test_should_flush_by_size_and_age(engine: Engine) -> None:
    writer = BatchWriter(engine, batch_rows=3, batch_age_s=0.05, retry_max_s=1)
    assert not writer.should_flush()
    writer.add("messages", [message("a"), message("b")])
    assert not writer.should_flush()
    writer.add("messages", [message("c")])
    assert writer.should_flush()
    small = BatchWriter(engine, batch_rows=1000, batch_age_s=0.05, retry_max_s=1)
    small.add("messages", [message("a")])
    time.sleep(0.06)
    assert small.should_flush()
    with pytest.raises(ValueError):
        small.add("nope", [message("a")])


def test_a_process_opening_an_engine_that_another_is_still_starting_to_serve_waits_for_it(tmp_path: Path) -> None:
    env = dict(os.environ, COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'starting'}", COEX_SQL_PORT="0", SERVE_AFTER_S="3")
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == b"opened"  # it holds the engine, serves it 3 s later
        engine = open_engine(Settings(clickhouse_url=env["COEX_CLICKHOUSE_URL"]))
        try:
            assert isinstance(engine, RemoteEngine)
            assert engine.query_rows("SELECT message_id FROM messages") == [("wamid.owned",)]
        finally:
            engine.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def coex_sql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "coex"), "sql", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_coex_sql_reads_through_the_owner_and_refuses_writes(owned_engine: dict[str, str]) -> None:
    done = coex_sql(owned_engine, "SELECT message_id FROM messages FINAL", "--format", "JSONEachRow")
    assert (done.returncode, done.stdout) == (0, '{"message_id":"wamid.owned"}\n'), done.stderr
    with_final = coex_sql(owned_engine, "SELECT count() FROM messages SETTINGS final = 1", "--format", "CSV")
    assert (with_final.returncode, with_final.stdout) == (0, "1\n"), with_final.stderr
    inline = coex_sql(owned_engine, "(SELECT message_id FROM messages FINAL) FORMAT JSONEachRow;")
    assert (inline.returncode, inline.stdout) == (0, '{"message_id":"wamid.owned"}\n'), inline.stderr
    for statement in (
        "INSERT INTO messages (message_id) VALUES ('x')",
        "DROP TABLE messages",
        "ALTER TABLE messages DELETE WHERE 1",
        "SELECT 1; DROP TABLE messages",
    ):
        refused = coex_sql(owned_engine, statement)
        assert refused.returncode == 2, statement
        assert refused.stderr.startswith("coex sql: refused:") and refused.stderr.count("\n") == 1
    failed = coex_sql(owned_engine, "SELECT * FROM no_such_table")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr


def test_coex_sql_before_any_schema_says_how_to_make_one(tmp_path: Path) -> None:
    env = dict(os.environ, COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'fresh'}")
    failed = coex_sql(env, "SELECT count() FROM messages")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert "no embedded ClickHouse at" in failed.stderr and "run `coex migrate`" in failed.stderr
    assert not (tmp_path / "fresh").exists()  # a reader leaves no empty engine behind
    (tmp_path / "fresh").mkdir()  # an engine folder without the database
    failed = coex_sql(env, "SELECT count() FROM messages")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert "UNKNOWN_DATABASE" in failed.stderr and "run `coex migrate`" in failed.stderr


async def test_a_second_process_writes_through_the_owner(owned_engine: dict[str, str]) -> None:
    settings = Settings(
        clickhouse_url=owned_engine["COEX_CLICKHOUSE_URL"], clickhouse_database=owned_engine["COEX_CLICKHOUSE_DATABASE"]
    )
    engine = open_engine(settings)
    try:
        assert isinstance(engine, RemoteEngine)
        assert apply_migrations(engine, settings.clickhouse_database) == []
        writer = writer_on(engine)
        writer.add("messages", [message("wamid.peer", status="sent")])
        writer.add_statuses(
            [status("wamid.peer", "delivered"), status("wamid.owned", "read")._replace(phone_number_id="1065")]
        )
        await writer.flush()
        rows = final_rows(engine, "SELECT message_id, status FROM messages ORDER BY message_id")
        assert rows == [("wamid.owned", "read"), ("wamid.peer", "delivered")]
        with pytest.raises(StatementRefused):
            engine.command("DROP TABLE messages")
        with pytest.raises(StatementRefused):
            engine.query_rows("INSERT INTO messages (message_id) VALUES ('x')")
        keys = serialize(columns_to_arrow(SinkKeyRow, [["t"], ["p"], ["m"]]))
        with pytest.raises(StatementRefused, match="not the columns named"):
            engine.insert_raw("sink_keys", ["token", "message_id", "phone_number_id"], keys, FORMAT)
    finally:
        engine.close()


def test_every_table_reads_with_final(engine: Engine) -> None:
    # Analysts are told to read FROM t FINAL; a plain MergeTree would refuse it.
    for table in ("messages", "contacts", "history_sync", "account_events", "dead_letters", "message_statuses",
                  "webhook_errors"):  # fmt: skip
        assert engine.query_rows(f"SELECT count() FROM {table} FINAL") == [(0,)]


async def test_final_collapses_each_partition_on_its_own_and_still_one_row_per_key(engine: Engine) -> None:
    # Partition-wise FINAL is right only because a key never changes partition: months apart, the
    # same message written twice (placeholder, then enriched) still reads as one row.
    setting = "SELECT getSetting('do_not_merge_across_partitions_select_final')"
    assert engine.query_rows(setting) == [(True,)]
    assert engine.query_readonly(setting, "CSV") == b"true\n"
    # A wide row asked for as PrettyCompact is a table, not ClickHouse's Vertical fallback.
    wide = "SELECT " + ", ".join(f"repeat('x', 40) AS column_{i}" for i in range(8))
    assert engine.query_readonly(wide, "PrettyCompact").decode().lstrip().startswith("┌─column_0")
    rows = [message(f"wamid.p{i}", complete=False, sent_at=T0 - i * 86_400 * 31) for i in range(6)]
    await write(engine, "messages", rows)
    await write(engine, "messages", [row._replace(type="image", version=message_version(True, "")) for row in rows])
    assert final_rows(engine, "SELECT count(), countIf(type = 'image') FROM messages") == [(6, 6)]


def month_stamps(months: int) -> list[int]:
    return [int(datetime(1990 + m // 12, m % 12 + 1, 15, tzinfo=UTC).timestamp()) for m in range(months)]


async def test_a_batch_over_more_months_than_one_insert_block_takes_lands(engine: Engine) -> None:
    rows = [message(f"wamid.m{i}", sent_at=ts) for i, ts in enumerate(month_stamps(250))]
    await asyncio.wait_for(write(engine, "messages", rows), timeout=60)
    assert final_rows(engine, "SELECT count(), uniqExact(toYYYYMM(sent_at)) FROM messages") == [(250, 250)]


def dead_letter(offset: int, *, refused: bool = False) -> DeadLetterRow:
    """`refused`: a DateTime64 from NaN, refused whenever it is sent (code 407): the row's fault."""
    failed_at = math.nan if refused else time.time()  # dead letters older than 30 days expire
    return DeadLetterRow("coex.history", 0, offset, PNID, "EnvelopeError: not JSON", "{not json", failed_at)


async def test_a_row_clickhouse_refuses_is_a_dead_letter_and_the_rest_of_its_batch_lands(engine: Engine) -> None:
    writer = writer_on(engine)
    refused_before = metrics.ROWS_REFUSED.labels("dead_letters")._value.get()
    writer.add("messages", [message(f"wamid.r{i}") for i in range(20)])
    writer.add("dead_letters", [dead_letter(i, refused=i == 3) for i in range(8)])
    await asyncio.wait_for(writer.flush(), timeout=60)
    assert final_rows(engine, "SELECT count() FROM messages") == [(20,)]
    kept = final_rows(engine, "SELECT offset FROM dead_letters WHERE topic = 'coex.history' ORDER BY offset")
    assert kept == [(i,) for i in range(8) if i != 3]
    ((topic, key, error, raw),) = final_rows(
        engine, "SELECT topic, key, error, raw FROM dead_letters WHERE topic != 'coex.history'"
    )
    assert (topic, key) == ("clickhouse:dead_letters", PNID)
    assert "Code: 407." in error
    assert orjson.loads(raw)["offset"] == 3
    assert metrics.ROWS_REFUSED.labels("dead_letters")._value.get() - refused_before == 1
    assert not writer.failing


class RefusingEngine(FlakyEngine):
    """The real engine, whose answers to writes it took are lost `failures` times (so each is retried)."""

    def __init__(self, engine: Engine, failures: int) -> None:
        super().__init__(engine, failures, fail_after_write=True)


async def test_isolating_refused_rows_through_lost_answers_writes_every_row_once(engine: Engine) -> None:
    flaky = RefusingEngine(engine, failures=6)
    writer = writer_on(flaky)
    writer.add("messages", [message(f"wamid.i{i}", sent_at=ts) for i, ts in enumerate(month_stamps(130))])
    writer.add("dead_letters", [dead_letter(i, refused=i in (2, 5)) for i in range(9)])
    await asyncio.wait_for(writer.flush(), timeout=60)
    assert flaky.failures == 0
    # No FINAL: each row written once, whatever was retried.
    assert engine.query_rows("SELECT count() FROM messages") == [(130,)]
    counts = "SELECT topic, count() FROM dead_letters GROUP BY topic ORDER BY topic"
    assert engine.query_rows(counts) == [("clickhouse:dead_letters", 2), ("coex.history", 7)]


async def test_a_batch_failing_longer_than_the_alert_time_is_an_error_and_a_gauge(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyEngine(engine, failures=10**9)
    writer = writer_on(flaky, retry_max_s=0.05, alert_after_s=0.3)
    writer.add("messages", [message("wamid.alert")])
    flush = asyncio.ensure_future(writer.flush())
    deadline = time.monotonic() + 30
    while not any(r.levelno == logging.ERROR for r in caplog.records) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (alert,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "ClickHouse writes have failed for" in alert and "ClickHouse is down" in alert
    assert writer.failing_s >= 0.3
    assert metrics.FAILING_SECONDS._value.get() >= 0.3
    flaky.failures = 0
    await asyncio.wait_for(flush, timeout=30)
    assert metrics.FAILING_SECONDS._value.get() == 0 and writer.failing_s == 0
    assert final_rows(engine, "SELECT message_id FROM messages") == [("wamid.alert",)]


async def test_two_bad_messages_of_one_record_are_two_dead_letters(engine: Engine) -> None:
    good = {"from": "15550783881", "id": "wamid.echo.good", "timestamp": "1739230000", "type": "text", "to": "1650"}
    bad = [{**good, "id": "wamid.bad1", "to": None}, {**good, "id": "wamid.bad2", "to": 7}]
    value = {
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "message_echoes": [good, *bad],
    }
    change = {"field": "smb_message_echoes", "value": value}
    body = orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [change]}]})
    ((topic, key, raw),) = records([body])
    processor = Processor(DictStore(), history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    out = processor.process(Record(topic, 0, 42, key, raw), now=time.time())
    writer = writer_on(engine)
    for table, rows in out.rows.items():
        writer.add(table, rows)
    await writer.flush()
    letters = final_rows(engine, "SELECT offset, item, raw FROM dead_letters ORDER BY item")
    assert [(offset, item, orjson.loads(raw)["id"]) for offset, item, raw in letters] == [
        (42, 1, "wamid.bad1"),
        (42, 2, "wamid.bad2"),
    ]


def test_a_version_3_schema_upgrades_and_keeps_its_dead_letters(settings: Settings) -> None:
    engine = open_engine(settings)
    try:
        db = settings.clickhouse_database
        engine.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        engine.command(SCHEMA_MIGRATIONS_DDL.format(db=db))
        for migration in MIGRATIONS[:3]:
            for statement in migration.statements:
                engine.command(statement.format(db=db))
            engine.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, '')")
        engine.command(f"INSERT INTO {db}.dead_letters VALUES ('coex.history', 0, 42, '', 'old', '{{}}', now64())")
        assert apply_migrations(engine, db) == [f"{m.version} {m.name}" for m in MIGRATIONS[3:]]
        sorting = engine.query_rows(
            "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'dead_letters'",
            parameters={"db": db},
        )
        assert sorting == [("topic, partition, offset, item",)]
        assert engine.query_rows("SELECT error, item FROM dead_letters") == [("old", 0)]
    finally:
        engine.close()

"""One row per key under FINAL when a key's versions carry other dates: messages and dead_letters
have one partition (migration 5), on new installs and on upgraded ones, whatever cut the upgrade
short. The real embedded engine."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.settings import Settings
from schemas.rows import DeadLetterRow, message_version
from sinks.connect import open_engine
from sinks.engine import Engine
from sinks.migrate import apply_migrations
from sinks.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL
from sinks.rebuild import Rebuild
from tests.integration.test_sinks import T0, engine, final_rows, message, settings, write

__all__ = ["engine", "settings"]  # fixtures

# Migration 5 and those after it, as `coex migrate` names them.
FROM_5 = [f"{m.version} {m.name}" for m in MIGRATIONS[4:]]

DAY = 86_400


def letter(failed_at: float, error: str = "EnvelopeError: not JSON") -> DeadLetterRow:
    return DeadLetterRow("coex.history", 0, 42, "k", error, "{not json", failed_at, 1)


async def test_a_dead_letter_failing_again_on_another_day_is_one_row_the_newest(engine: Engine) -> None:
    now = time.time()
    await write(engine, "dead_letters", [letter(now, "second")])
    await write(engine, "dead_letters", [letter(now - 3 * DAY, "first")])  # read late, on a replay
    assert final_rows(engine, "SELECT error FROM dead_letters") == [("second",)]


async def test_a_placeholder_and_its_follow_up_months_apart_are_one_message(engine: Engine) -> None:
    # A follow-up's timestamp may differ from its placeholder's; the enriched row takes the follow-up's.
    await write(engine, "messages", [message("wamid.m", complete=False, sent_at=T0)])
    await write(engine, "messages", [message("wamid.m", sent_at=T0 - 40 * DAY, version=message_version(True, ""))])
    rows = final_rows(engine, f"SELECT type, sent_at = toDateTime({T0 - 40 * DAY}) FROM messages")
    assert rows == [("image", 1)]


def schema_4(settings: Settings) -> Engine:
    """An engine on a database as migrations 1-4 left it, with messages months apart and dead letters
    days apart."""
    engine = open_engine(settings)
    db = settings.clickhouse_database
    engine.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    engine.command(SCHEMA_MIGRATIONS_DDL.format(db=db))
    for migration in MIGRATIONS[:4]:
        for statement in migration.statements:
            assert isinstance(statement, str)
            engine.command(statement.format(db=db))
        engine.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, '')")
    for i in range(3):
        engine.command(
            f"INSERT INTO {db}.messages (phone_number_id, message_id, sent_at, raw, version) "
            f"VALUES ('p', 'wamid.{i}', {T0 - i * 40 * DAY}, '{{}}', 1)"
        )
        engine.command(
            f"INSERT INTO {db}.dead_letters (topic, offset, error, failed_at) "
            f"VALUES ('t', {i}, 'e', now64() - {i * DAY})"
        )
    return engine


def assert_upgraded(engine: Engine, db: str) -> None:
    tables = engine.query_rows(
        "SELECT name, partition_key FROM system.tables WHERE database = {db:String} "
        "AND (name IN ('messages', 'dead_letters') OR name LIKE '%\\_\\_%') ORDER BY name",
        parameters={"db": db},
    )
    assert tables == [("dead_letters", "tuple()"), ("messages", "tuple()")]
    assert final_rows(engine, "SELECT message_id FROM messages ORDER BY message_id") == [
        (f"wamid.{i}",) for i in range(3)
    ]
    assert final_rows(engine, "SELECT offset, item FROM dead_letters ORDER BY offset") == [(i, 0) for i in range(3)]
    assert apply_migrations(engine, db) == []


def test_a_version_4_schema_upgrades_to_one_partition_and_keeps_its_rows(settings: Settings) -> None:
    engine = schema_4(settings)
    try:
        assert apply_migrations(engine, settings.clickhouse_database) == FROM_5
        assert_upgraded(engine, settings.clickhouse_database)
        assert engine.query_rows("SELECT sum(messages) FROM threads") == [(3,)]  # views read the new table
        sorting = engine.query_rows(
            "SELECT name, sorting_key, engine FROM system.tables WHERE database = {db:String} "
            "AND name IN ('messages', 'dead_letters') ORDER BY name",
            parameters={"db": settings.clickhouse_database},
        )
        assert sorting == [
            ("dead_letters", "topic, partition, offset, item", "ReplacingMergeTree"),
            ("messages", "phone_number_id, message_id", "ReplacingMergeTree"),
        ]
    finally:
        engine.close()


class Crash(Exception):
    pass


class CrashingEngine:
    """The real engine, which dies before its `at`-th command; `before_rename` runs just before a
    RENAME, as a worker's write to the old table would land then."""

    def __init__(self, engine: Engine, at: int, before_rename: Any = None) -> None:
        self.engine = engine
        self.database = engine.database
        self.at = at
        self.before_rename = before_rename
        self.commands = 0

    def command(self, sql: str, settings: Any = None) -> None:
        self.commands += 1
        if self.commands == self.at:
            raise Crash(sql)
        if sql.startswith("RENAME") and self.before_rename is not None:
            self.before_rename()
        self.engine.command(sql, settings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.fixture
def old(settings: Settings) -> Iterator[Engine]:
    engine = schema_4(settings)
    try:
        yield engine
    finally:
        engine.close()


@pytest.mark.parametrize("at", range(1, 14))
def test_an_upgrade_cut_short_anywhere_finishes_when_run_again(old: Engine, settings: Settings, at: int) -> None:
    db = settings.clickhouse_database
    crashing = CrashingEngine(old, at)
    with contextlib.suppress(Crash):
        apply_migrations(crashing, db)  # type: ignore[arg-type]
    rest = apply_migrations(old, db)
    assert rest == FROM_5[len(FROM_5) - len(rest) :]
    assert_upgraded(old, db)


def test_rows_written_to_the_old_table_during_the_copy_follow(old: Engine, settings: Settings) -> None:
    db = settings.clickhouse_database
    late = iter(range(100, 102))  # one write before each swap of migration 5's (later ones rebuild other tables)

    def worker_writes() -> None:
        i = next(late, None)
        if i is None:
            return
        old.command(
            f"INSERT INTO {db}.messages (phone_number_id, message_id, sent_at, raw, version) "
            f"VALUES ('p', 'wamid.late{i}', {T0}, '{{}}', 1)"
        )

    apply_migrations(CrashingEngine(old, 0, worker_writes), db)  # type: ignore[arg-type]
    assert final_rows(old, "SELECT count(), countIf(message_id LIKE 'wamid.late%') FROM messages") == [(5, 2)]


def test_an_upgrade_cut_between_its_renames_finishes_when_run_again(old: Engine, settings: Settings) -> None:
    db = settings.clickhouse_database
    step = MIGRATIONS[4].statements[0]
    assert isinstance(step, Rebuild) and step.table == "messages"
    old.command(f"CREATE TABLE {db}.messages__new AS {db}.messages ENGINE = {step.engine.format(db=db)}")
    old.command(f"INSERT INTO {db}.messages__new SELECT * FROM {db}.messages WHERE message_id != 'wamid.2'")
    old.command(f"RENAME TABLE {db}.messages TO {db}.messages__old")
    apply_migrations(old, db)
    assert_upgraded(old, db)


def test_an_insert_still_running_at_the_swap_lands_in_the_new_table(old: Engine, settings: Settings) -> None:
    db = settings.clickhouse_database
    writer = open_engine(settings)  # a worker's handle of its own
    slow = (
        f"INSERT INTO {db}.messages (phone_number_id, message_id, sent_at, raw, version) "
        f"SELECT 'p', concat('wamid.slow', toString(number)), {T0}, '{{}}', 1 + sleepEachRow(0.5) "
        "FROM numbers(4) SETTINGS max_block_size = 1"
    )
    inserting = threading.Thread(target=writer.command, args=(slow,))

    def start_slow_insert() -> None:
        if not inserting.is_alive() and inserting.ident is None:
            inserting.start()
            while not old.query_rows(
                "SELECT count() FROM system.processes WHERE query LIKE '%wamid.slow%' AND query_kind = 'Insert'"
            )[0][0]:
                time.sleep(0.01)

    try:
        apply_migrations(CrashingEngine(old, 0, start_slow_insert), db)  # type: ignore[arg-type]
        inserting.join()
    finally:
        writer.close()
    assert final_rows(old, "SELECT count() FROM messages WHERE message_id LIKE 'wamid.slow%'") == [(4,)]

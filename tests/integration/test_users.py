"""Users who hide their number, on the ClickHouse side: `threads` has one row per user whichever
identifiers their messages carry, `contacts` one row per user (a merged row is gone under FINAL),
and an install at migration 5 upgrades through migrations 6 and 7 keeping its rows, whatever cut
the upgrade short. The real embedded engine, written through sinks' writer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from coex.status import fetch_status
from runtime.settings import Settings
from schemas.rows import ContactRow, IdentityRow, MessageRow, contact_version
from sinks.connect import open_engine
from sinks.engine import Engine
from sinks.migrate import apply_migrations
from sinks.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL
from sinks.rebuild import Rebuild, rebuild
from sinks.status_sql import quote
from tests.integration.test_one_partition import Crash, CrashingEngine
from tests.integration.test_sinks import PNID, T0, WABA, engine, final_rows, message, settings, writer_on

__all__ = ["engine", "settings"]  # fixtures

OTHER_PNID = "106540352242999"  # a second business, the same users who never hid their number
ANA, BEA, CAI, DIA = "5511900000001", "5511900000002", "5511900000003", "5511900000004"
ANA_ID, BEA_ID, EVA_ID, FLO_ID = "BR.1502576394655843", "BR.ENT77", "BR.9eva", "BR.9flo"
THREAD = "SELECT contact_wa_id, contact_user_id, contact_username, messages, last_message_id FROM threads"
# Migration 6 and those after it, as `coex migrate` names them.
FROM_6 = [f"{m.version} {m.name}" for m in MIGRATIONS[5:]]
# Commands that migrations 6 to 9 issue on an install at migration 5 (CrashingEngine counts them).
UPGRADE_COMMANDS = 20


def said(mid: str, at: int, *, phone: str = "", bsuid: str = "", username: str = "", **changes: Any) -> MessageRow:
    """A message of the user's, naming them as the record did."""
    return message(
        mid,
        sent_at=at,
        direction="inbound",
        contact_wa_id=phone,
        contact_user_id=bsuid,
        contact_username=username,
        **changes,
    )


def link(bsuid: str, phone: str, at: int, *, username: str = "", pnid: str = PNID) -> IdentityRow:
    return IdentityRow(pnid, bsuid, phone, username, at, at, WABA, at)


async def flush(engine: Engine, tables: dict[str, list[Any]]) -> None:
    writer = writer_on(engine)
    for table, rows in tables.items():
        writer.add(table, rows)
    await writer.flush()


async def test_threads_give_one_row_per_user_whichever_identifiers_their_messages_carry(engine: Engine) -> None:
    messages = [
        said("wamid.a1", T0, phone=ANA),  # history from before BSUIDs
        said("wamid.a2", T0 + 1, phone=ANA, bsuid=ANA_ID, username="ana"),  # both: a link
        said("wamid.a3", T0 + 2, bsuid=ANA_ID),  # number hidden since; the stream did not resolve it
        said("wamid.b1", T0, phone=BEA),  # phone only; a contact sync linked the BSUID
        said("wamid.b2", T0 + 5, bsuid=BEA_ID, username="bea"),  # then BSUID only
        said("wamid.c1", T0, phone=CAI),  # phone only, never linked
        said("wamid.e1", T0, bsuid=EVA_ID, username="eva"),  # two users whose numbers were always withheld
        said("wamid.e2", T0 + 1, bsuid=EVA_ID),
        said("wamid.f1", T0 + 3, bsuid=FLO_ID, username="flo"),
    ]
    links = [link(ANA_ID, ANA, T0 + 1, username="ana"), link(BEA_ID, BEA, T0 - 10, username="bea.old")]
    await flush(engine, {"messages": messages, "user_identities": links})
    assert sorted(final_rows(engine, THREAD)) == [
        ("", EVA_ID, "eva", 2, "wamid.e2"),
        ("", FLO_ID, "flo", 1, "wamid.f1"),
        (ANA, ANA_ID, "ana", 3, "wamid.a3"),
        (BEA, BEA_ID, "bea", 2, "wamid.b2"),
        (CAI, "", "", 1, "wamid.c1"),
    ]


async def test_a_phone_users_bsuid_and_username_come_from_their_link_when_no_message_gave_them(
    engine: Engine,
) -> None:
    await flush(
        engine,
        {
            "messages": [said("wamid.d1", T0, phone=DIA)],
            "user_identities": [link("BR.old", DIA, T0 - 9), link("BR.new", DIA, T0 - 1, username="dia")],
        },
    )
    assert final_rows(engine, THREAD) == [(DIA, "BR.new", "dia", 1, "wamid.d1")]


async def test_messages_per_user_are_the_same_before_and_after_a_user_hid_their_number(engine: Engine) -> None:
    """OTHER_PNID's users never hid their number; PNID's Ana hid hers after a message that gave
    both, and the stream wrote her later messages with her number (resolved from the link) or
    without it (read before the link): the same threads, message for message."""
    shown = [
        said("wamid.1", T0, phone=ANA, phone_number_id=OTHER_PNID),
        said("wamid.2", T0 + 1, phone=ANA, phone_number_id=OTHER_PNID),
        said("wamid.3", T0 + 2, phone=ANA, phone_number_id=OTHER_PNID),
        said("wamid.4", T0 + 3, phone=ANA, phone_number_id=OTHER_PNID),
        said("wamid.5", T0, phone=BEA, phone_number_id=OTHER_PNID),
    ]
    hidden = [
        said("wamid.1", T0, phone=ANA),
        said("wamid.2", T0 + 1, phone=ANA, bsuid=ANA_ID),
        said("wamid.3", T0 + 2, phone=ANA, bsuid=ANA_ID),
        said("wamid.4", T0 + 3, bsuid=ANA_ID),
        said("wamid.5", T0, phone=BEA),
    ]
    await flush(engine, {"messages": shown + hidden, "user_identities": [link(ANA_ID, ANA, T0 + 1)]})
    per_user = "SELECT contact_wa_id, messages, last_message_id FROM threads WHERE phone_number_id = {p:String}"

    def threads(pnid: str) -> list[tuple[Any, ...]]:
        return sorted(engine.query_rows(per_user, parameters={"p": pnid}))

    assert threads(PNID) == threads(OTHER_PNID) == [(ANA, 4, "wamid.4"), (BEA, 1, "wamid.5")]


def contact(key: str, *, phone: str = "", bsuid: str = "", at: int = T0, **changes: Any) -> ContactRow:
    row = ContactRow(
        PNID, phone, "Name", "Name", 0, at, WABA, contact_version(at, False), contact_user_id=bsuid, user_key=key
    )
    return row._replace(**changes)


async def test_a_merged_contact_row_is_gone_under_final_and_every_count_counts_users(
    engine: Engine, settings: Settings
) -> None:
    """Eva and Flo (numbers withheld) are two contacts; Ana was first seen by BSUID, then a link
    told her number: the stream wrote her BSUID row again as merged, her state under her number."""
    await flush(
        engine,
        {"contacts": [contact(EVA_ID, bsuid=EVA_ID), contact(FLO_ID, bsuid=FLO_ID), contact(ANA_ID, bsuid=ANA_ID)]},
    )
    merged = contact(ANA_ID, bsuid=ANA_ID, merged=1, version=contact_version(T0, False) + 1)
    await flush(engine, {"contacts": [merged, contact(ANA, phone=ANA, bsuid=ANA_ID)]})
    expected = [(ANA, ANA, ANA_ID), (EVA_ID, "", EVA_ID), (FLO_ID, "", FLO_ID)]
    users = "SELECT user_key, contact_wa_id, contact_user_id FROM contacts ORDER BY user_key"
    db = settings.clickhouse_database
    for _merge in range(2):  # as written, then merged into one part (FINAL then reads one part as is)
        assert final_rows(engine, users) == expected
        assert engine.query_rows(users.replace("contacts", "contacts FINAL")) == expected
        assert engine.query_rows("SELECT contacts_alive FROM sync_summary") == [(3,)]
        assert [row.contacts for row in fetch_status(engine.query_rows, db)] == [3]
        engine.command(f"OPTIMIZE TABLE {db}.contacts FINAL")
    assert engine.query_rows("SELECT count() FROM contacts") == [(4,)]  # the merged row is kept, unread


def raw(fields: dict[str, str]) -> str:
    """A `raw` column's JSON as an SQL literal."""
    return quote(orjson.dumps(fields).decode())


def at_migration_5(settings: Settings) -> Engine:
    """An engine on a database as migrations 1-5 left it, with a user's rows written then."""
    engine = open_engine(settings)
    db = settings.clickhouse_database
    engine.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    engine.command(SCHEMA_MIGRATIONS_DDL.format(db=db))
    for migration in MIGRATIONS[:5]:
        for statement in migration.statements:
            if isinstance(statement, Rebuild):
                rebuild(engine, db, statement)
            else:
                engine.command(statement.format(db=db))
        engine.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, '')")
    messages = [
        ("wamid.in", ANA, "inbound", T0, raw({"from": ANA, "from_user_id": ANA_ID})),
        ("wamid.out", ANA, "outbound", T0 + 1, raw({"to": ANA, "to_user_id": ANA_ID})),
        ("wamid.old", BEA, "inbound", T0, raw({"from": BEA})),
    ]
    engine.command(
        f"INSERT INTO {db}.messages (phone_number_id, message_id, contact_wa_id, direction, sent_at, raw, version) "
        + "VALUES "
        + ", ".join(f"('{PNID}', '{mid}', '{wa}', '{way}', {at}, {text}, 1)" for mid, wa, way, at, text in messages)
    )
    engine.command(
        f"INSERT INTO {db}.message_statuses (phone_number_id, message_id, recipient_id, status, raw) "
        f"VALUES ('{PNID}', 'wamid.out', '{ANA}', 'read', {raw({'recipient_user_id': ANA_ID})})"
    )
    engine.command(
        f"INSERT INTO {db}.contacts VALUES ('{PNID}', '{ANA}', 'Ana Lima', 'Ana', 0, {T0}, '{WABA}', 1), "
        f"('{PNID}', '{ANA}', 'Ana L.', 'Ana', 0, {T0 + 9}, '{WABA}', 2), "
        f"('{PNID}', '{BEA}', 'Bea', 'Bea', 1, {T0}, '{WABA}', 1)"
    )
    return engine


@pytest.fixture
def old(settings: Settings) -> Iterator[Engine]:
    engine = at_migration_5(settings)
    try:
        yield engine
    finally:
        engine.close()


def assert_upgraded(engine: Engine, db: str) -> None:
    tables = engine.query_rows(
        "SELECT name, partition_key, sorting_key, engine_full LIKE 'ReplacingMergeTree(version, merged)%' "
        "FROM system.tables WHERE database = {db:String} AND (name = 'contacts' OR name LIKE '%\\_\\_%')",
        parameters={"db": db},
    )
    assert tables == [("contacts", "", "phone_number_id, user_key", 1)]
    columns = engine.query_rows(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'contacts' ORDER BY position",
        parameters={"db": db},
    )
    assert [name for (name,) in columns] == list(ContactRow._fields)
    contacts = "SELECT user_key, contact_wa_id, full_name, deleted, merged FROM contacts ORDER BY user_key"
    assert final_rows(engine, contacts) == [(ANA, ANA, "Ana L.", 0, 0), (BEA, BEA, "Bea", 1, 0)]
    messages = "SELECT message_id, contact_user_id FROM messages ORDER BY message_id"
    assert final_rows(engine, messages) == [("wamid.in", ANA_ID), ("wamid.old", ""), ("wamid.out", ANA_ID)]
    assert final_rows(engine, "SELECT recipient_user_id FROM message_statuses") == [(ANA_ID,)]
    assert sorted(final_rows(engine, THREAD)) == [(ANA, ANA_ID, "", 2, "wamid.out"), (BEA, "", "", 1, "wamid.old")]
    assert apply_migrations(engine, db) == []


async def test_an_install_at_migration_5_upgrades_keeping_its_users(old: Engine, settings: Settings) -> None:
    db = settings.clickhouse_database
    counting = CrashingEngine(old, 0)
    assert apply_migrations(counting, db) == FROM_6  # type: ignore[arg-type]
    assert counting.commands == UPGRADE_COMMANDS
    assert_upgraded(old, db)
    # The writer's rows land in the rebuilt table; a merged row hides the key it was written for.
    await flush(
        old,
        {
            "contacts": [
                ContactRow(PNID, BEA, "Bea", "Bea", 0, T0 + 60, WABA, contact_version(T0 + 60, False), BEA_ID, "", BEA),
                contact(EVA_ID, bsuid=EVA_ID, merged=1),
            ]
        },
    )
    assert final_rows(old, "SELECT user_key, contact_user_id, deleted FROM contacts ORDER BY user_key") == [
        (ANA, "", 0),
        (BEA, BEA_ID, 0),
    ]


@pytest.mark.parametrize("at", range(1, UPGRADE_COMMANDS + 1))
def test_an_upgrade_from_migration_5_cut_short_anywhere_finishes_when_run_again(
    old: Engine, settings: Settings, at: int
) -> None:
    db = settings.clickhouse_database
    with contextlib.suppress(Crash):
        apply_migrations(CrashingEngine(old, at), db)  # type: ignore[arg-type]
    rest = apply_migrations(old, db)
    assert rest == FROM_6[len(FROM_6) - len(rest) :]
    assert_upgraded(old, db)


def test_a_contact_written_during_the_copy_follows_into_the_rebuilt_table(old: Engine, settings: Settings) -> None:
    db = settings.clickhouse_database

    def worker_writes() -> None:
        old.command(
            f"INSERT INTO {db}.contacts (phone_number_id, contact_wa_id, full_name, changed_at, version, user_key) "
            f"VALUES ('{PNID}', '{CAI}', 'Cai', {T0}, 1, '{CAI}')"
        )

    apply_migrations(CrashingEngine(old, 0, worker_writes), db)  # type: ignore[arg-type]
    assert final_rows(old, "SELECT user_key FROM contacts ORDER BY user_key") == [(ANA,), (BEA,), (CAI,)]


def test_each_rebuild_names_the_layout_its_engine_makes(engine: Engine, settings: Settings) -> None:
    """A rebuilt table is told by its layout: one named wrong would be rebuilt on every run."""
    db = settings.clickhouse_database
    steps = [s for m in MIGRATIONS for s in m.statements if isinstance(s, Rebuild)]
    for i, step in enumerate(steps):
        engine.command(f"CREATE TABLE {db}.layout_{i} AS {db}.{step.table} ENGINE = {step.engine.format(db=db)}")
        made = engine.query_rows(
            "SELECT partition_key, sorting_key FROM system.tables WHERE database = {db:String} AND name = {n:String}",
            parameters={"db": db, "n": f"layout_{i}"},
        )
        assert made == [step.layout], step.table

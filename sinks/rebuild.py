"""A table recreated under a new engine clause: what ALTER cannot change (PARTITION BY, the engine,
a sorting key made of other columns).

The new table is made beside the old one with the same columns (`CREATE TABLE ... AS`) and filled
with `INSERT ... SELECT`; one `RENAME` puts it in the old one's place (a writer in between fails and
retries), and the old one goes once what was written to it meanwhile followed, inserts that were
still running at the swap included. The tables' names and layouts (partition and sorting keys) tell
how far a run got: one cut short by a crash, or racing another process, carries on from there.
Copying a row twice is harmless: the new tables are ReplacingMergeTrees whose keys never span
partitions, so FINAL reads one row per key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sinks.errors import error_code
from sinks.status_sql import quote

if TYPE_CHECKING:
    from sinks.engine import Engine

# Another process moved a table between our look and our step: look again.
_RACED = frozenset({57, 60})  # TABLE_ALREADY_EXISTS, UNKNOWN_TABLE
_ATTEMPTS = 3
INSERTS_WAIT_S = 120.0  # a worker's insert that began before a swap; longer ones fail the migration


@dataclass(frozen=True, slots=True)
class Rebuild:
    table: str
    engine: str  # `ENGINE = ...` with its PARTITION BY, ORDER BY, TTL, SETTINGS; `{db}` for the database
    # The new layout as system.tables shows it (partition_key, '' for none; sorting_key): how a
    # table already rebuilt is told.
    partition_key: str
    sorting_key: str

    @property
    def layout(self) -> tuple[str, str]:
        return self.partition_key, self.sorting_key


class RebuildError(RuntimeError):
    pass


def rebuild(engine: Engine, database: str, step: Rebuild) -> None:
    for attempt in range(_ATTEMPTS):
        try:
            _advance(engine, database, step)
            return
        except Exception as exc:
            if error_code(str(exc)) not in _RACED or attempt == _ATTEMPTS - 1:
                raise


def _advance(engine: Engine, database: str, step: Rebuild) -> None:
    new, old = f"{step.table}__new", f"{step.table}__old"
    table, spare, retired = (f"{database}.{name}" for name in (step.table, new, old))
    copied: list[str] | None = None  # the old table's parts already copied, when known
    if _layout(engine, database, step.table) is None:
        # Between the two renames of a swap that a crash cut short.
        if _layout(engine, database, new) is None:
            raise RebuildError(f"{table} is missing and there is no {spare} to put in its place")
        engine.command(f"RENAME TABLE {spare} TO {table}")
    if _layout(engine, database, step.table) != step.layout:
        engine.command(f"CREATE TABLE IF NOT EXISTS {spare} AS {table} ENGINE = {step.engine.format(db=database)}")
        copied = _parts(engine, database, step.table)
        engine.command(f"INSERT INTO {spare} SELECT * FROM {table}")
        engine.command(f"RENAME TABLE {table} TO {retired}, {spare} TO {table}")
        _await_inserts(engine, step.table, time.monotonic())
    if _layout(engine, database, old) is None:
        return
    # Rows a writer put in the old table since the copy (all of them when a crash lost which
    # parts were copied) follow before it goes.
    fresh = f" WHERE _part NOT IN ({', '.join(map(quote, copied))})" if copied else ""
    engine.command(f"INSERT INTO {table} SELECT * FROM {retired}{fresh}")
    engine.command(f"DROP TABLE IF EXISTS {retired} SYNC")


def _await_inserts(engine: Engine, table: str, swapped: float) -> None:
    """Waits for inserts begun before the swap: they write to the old table, which must hold all
    they write before its rows are carried over. Any insert naming the table that has run at least
    as long as the swap is past counts (its clock starts before ours, never after)."""
    deadline = swapped + INSERTS_WAIT_S
    while True:
        running = engine.query_rows(
            "SELECT count() FROM system.processes WHERE query_kind = 'Insert' "
            "AND position(query, {name:String}) > 0 AND elapsed >= {since:Float64}",
            parameters={"name": table, "since": time.monotonic() - swapped},
        )
        if not running[0][0]:
            return
        if time.monotonic() > deadline:
            raise RebuildError(
                f"inserts into {table} begun before it was swapped still run after {INSERTS_WAIT_S:.0f} s; "
                "run the migration again once they end"
            )
        time.sleep(0.05)


def _layout(engine: Engine, database: str, name: str) -> tuple[str, str] | None:
    """The table's partition key ('' when it has none) and sorting key; None when there is no such table."""
    rows = engine.query_rows(
        "SELECT partition_key, sorting_key FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        parameters={"db": database, "name": name},
    )
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


def _parts(engine: Engine, database: str, name: str) -> list[str]:
    rows = engine.query_rows(
        "SELECT name FROM system.parts WHERE database = {db:String} AND table = {name:String} AND active",
        parameters={"db": database, "name": name},
    )
    return [str(row[0]) for row in rows]

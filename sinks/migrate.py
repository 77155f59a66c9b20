"""The ClickHouse schema's migrations: the database, then every migration not applied yet."""

from __future__ import annotations

import logging

from sinks.engine import Engine, check_identifier
from sinks.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL
from sinks.rebuild import Rebuild, rebuild

log = logging.getLogger(__name__)


def applied_versions(engine: Engine, database: str) -> set[int]:
    """Versions recorded in `schema_migrations`; empty when the database or table does not exist."""
    try:
        rows = engine.query_rows(f"SELECT version FROM {database}.schema_migrations FINAL")
    except Exception as exc:
        if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
            return set()
        raise
    return {int(row[0]) for row in rows}


def apply_migrations(engine: Engine, database: str) -> list[str]:
    """Apply what `schema_migrations` does not list yet; returns "<version> <name>" of each applied.

    Idempotent, and safe when two processes race: every statement is IF NOT EXISTS and the
    record table collapses repeated versions; a rebuild picks up where a crash left it. Issues no
    DDL when up to date, so it also works through an owner's endpoint (which refuses DDL).
    """
    check_identifier(database)
    done = applied_versions(engine, database)
    pending = [m for m in MIGRATIONS if m.version not in done]
    if not pending:
        return []
    engine.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    engine.command(SCHEMA_MIGRATIONS_DDL.format(db=database))
    applied: list[str] = []
    for migration in pending:
        for statement in migration.statements:
            if isinstance(statement, Rebuild):
                rebuild(engine, database, statement)
            else:
                engine.command(statement.format(db=database))
        engine.command(
            f"INSERT INTO {database}.schema_migrations (version, name) VALUES ({migration.version}, '{migration.name}')"
        )
        applied.append(f"{migration.version} {migration.name}")
        log.info("applied migration %d %s", migration.version, migration.name)
    return applied

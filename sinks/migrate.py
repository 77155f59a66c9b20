"""`coex migrate`: the database, the schema migrations not applied yet, then the Kafka topics.

Exit 0 when both ClickHouse and Kafka are ready; 1 (with the reason) when either is not, so a
deploy step never reports success while the pipeline cannot run. ClickHouse is migrated first and
stays migrated when only the topics fail; running the command again finishes the job.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from coex.redact import redact_url, scrub
from coex.settings import Settings
from sinks.engine import Engine, check_identifier, open_engine
from sinks.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL
from sinks.rebuild import Rebuild, rebuild
from sinks.statements import StatementRefused

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


def _ensure_topics(settings: Settings) -> list[str]:
    from ingest.topics import ensure_topics

    return asyncio.run(ensure_topics(settings))


def run(settings: Settings, args: argparse.Namespace) -> int:
    out = sys.stdout
    url = redact_url(settings.clickhouse_url)

    def fail(line: str) -> int:
        sys.stderr.write(scrub(line, settings.clickhouse_url) + "\n")
        return 1

    try:
        engine = open_engine(settings)
    except Exception as exc:
        return fail(f"coex migrate: ClickHouse {url}: {exc}")
    try:
        applied = apply_migrations(engine, settings.clickhouse_database)
    except StatementRefused:
        return fail(
            f"coex migrate: another process serves the embedded ClickHouse {url} and "
            "schema changes do not go through it; stop that process and run `coex migrate` again"
        )
    except Exception as exc:
        return fail(f"coex migrate: ClickHouse {url}: {exc}")
    finally:
        engine.close()
    where = f"{url} database {settings.clickhouse_database}"
    if applied:
        out.write(f"ClickHouse {where}: applied {', '.join(applied)}\n")
    else:
        out.write(f"ClickHouse {where}: up to date\n")
    try:
        created = _ensure_topics(settings)
    except Exception as exc:
        sys.stderr.write(
            f"coex migrate: ClickHouse is migrated, but the Kafka topics could not be created at "
            f"{settings.kafka_bootstrap}: {exc}. Start Kafka and run `coex migrate` again.\n"
        )
        return 1
    if created:
        out.write(f"Kafka {settings.kafka_bootstrap}: created topics {', '.join(created)}\n")
    else:
        out.write(f"Kafka {settings.kafka_bootstrap}: topics up to date\n")
    out.flush()
    return 0

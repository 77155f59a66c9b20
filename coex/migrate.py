"""`coex migrate`: the database, the schema migrations not applied yet, then the Kafka topics.

Exit 0 when both ClickHouse and Kafka are ready; 1 (with the reason) when either is not, so a
deploy step never reports success while the pipeline cannot run. ClickHouse is migrated first and
stays migrated when only the topics fail; running the command again finishes the job.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from runtime.redact import redact_url, scrub
from runtime.settings import Settings
from sinks.connect import open_engine
from sinks.migrate import apply_migrations
from sinks.statements import StatementRefused
from topics.catalog import ensure_topics


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
        created = asyncio.run(ensure_topics(settings))
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

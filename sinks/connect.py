"""Opening the engine a URL names: a ClickHouse server, the embedded engine, or the endpoint of the
process that owns the embedded engine (`sinks.remote`)."""

from __future__ import annotations

import logging
import os
import time

from runtime.settings import Settings
from sinks.client import parse_url
from sinks.engine import ClientEngine, Engine, readonly_settings
from sinks.remote import connect_owner

log = logging.getLogger(__name__)

# How long to wait for a process that holds the embedded engine to serve it (write its owner file).
OWNER_WAIT_S = 60.0


def open_engine(settings: Settings, *, create_database: bool = True) -> Engine:
    """The engine for `settings.clickhouse_url`, using `settings.clickhouse_database`.

    `create_database=False` for callers that only read (`coex sql`): a missing database is then
    the first query's error, not a write.
    """
    target = parse_url(settings.clickhouse_url)
    if not target.embedded:
        return _client_engine(settings, create_database)
    if not create_database and not os.path.isdir(target.path):
        # A reader would leave an empty engine folder behind.
        raise FileNotFoundError(f"no embedded ClickHouse at {target.path} yet: run `coex migrate`, or start `coex dev`")
    deadline = time.monotonic() + OWNER_WAIT_S
    while True:
        remote = connect_owner(target.path, settings.clickhouse_database)
        if remote is not None:
            return remote
        try:
            return _client_engine(settings, create_database)
        except Exception as exc:
            if "EmbeddedServer" not in str(exc):
                raise
            # Another process holds the engine: a worker that has just opened it serves it a few
            # seconds later (after its migrations and Kafka start), so wait for its owner file.
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"the embedded ClickHouse at {target.path} is open in another process that has not "
                    f"served it within {OWNER_WAIT_S:.0f} s (no live owner in its .coex-owner.json); "
                    "stop that process or use its endpoint"
                ) from exc
            log.info("the embedded ClickHouse at %s is being opened by another process; waiting for it", target.path)
            time.sleep(0.5)


def _client_engine(settings: Settings, create_database: bool) -> ClientEngine:
    url, database = settings.clickhouse_url, settings.clickhouse_database
    return ClientEngine(url, database, readonly_settings(settings), create_database=create_database)

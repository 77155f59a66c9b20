"""Hands out a clickhouse-connect client for `COEX_CLICKHOUSE_URL`; nothing else knows which kind.

`chdb:///path` opens the embedded engine in this process (one process owns a path at a time);
`http(s)://user:pass@host:port` speaks to a ClickHouse server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

# Every table's partition key is a function of columns that never change for its key
# (sinks/migrations.py), so FINAL may collapse each partition on its own: 2x faster, and no single
# merge over every part (~100 MB more for a 1M-row import not merged yet).
SESSION_SETTINGS: dict[str, Any] = {"do_not_merge_across_partitions_select_final": 1}


@dataclass(frozen=True, slots=True)
class Target:
    embedded: bool
    path: str  # absolute engine folder for chdb, '' for a server
    url: str


def parse_url(url: str) -> Target:
    """Resolve a `COEX_CLICKHOUSE_URL`. `chdb:///./x` and `chdb:///../x` are relative to the cwd."""
    if url.startswith("chdb://"):
        rest = url[len("chdb://") :].split("?", 1)[0]
        if rest.startswith(("/./", "/../")):
            rest = rest[1:]
        if not rest or rest in ("/", "memory", ":memory:"):
            raise ValueError(f"COEX_CLICKHOUSE_URL {url!r}: give the embedded engine a folder")
        return Target(embedded=True, path=os.path.realpath(unquote(rest)), url=url)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"COEX_CLICKHOUSE_URL {url!r}: expected chdb:///path or http(s)://host:port")
    return Target(embedded=False, path="", url=url)


def open_client(url: str, database: str | None = None, **settings: Any) -> Client:
    """A client on the target of `url`, using `database` when given (it must exist)."""
    target = parse_url(url)
    settings = {**SESSION_SETTINGS, **settings}
    if target.embedded:
        os.makedirs(target.path, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=target.path, database=database, settings=settings)
    return clickhouse_connect.get_client(dsn=url, database=database, settings=settings)

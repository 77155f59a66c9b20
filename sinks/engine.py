"""One handle on ClickHouse for everything in coex: an embedded engine or a server, same methods.

`open_engine(settings)` picks: a ClickHouse server (`http(s)://`) -> a clickhouse-connect client;
`chdb:///path` owned by another live process -> a RemoteEngine talking to that owner's loopback
endpoint (sinks/engine_server.py); else the path opened in this process. The methods block: call
them from async code through `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from runtime.settings import Settings
from sinks.client import open_client, parse_url
from sinks.encode import FORMAT, serialize
from sinks.handles import HandlePool
from sinks.statements import (
    StatementRefused,
    check_format,
    check_read_only,
    check_read_statement,
    check_table_insert,
    sql_string,
)

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# query_rows reads JSON on every engine kind, so local and remote rows have the same Python types.
ROWS_FORMAT = "JSONCompactEachRowWithNamesAndTypes"
ROWS_SETTINGS: dict[str, Any] = {
    "date_time_output_format": "unix_timestamp",
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_decimals": 0,
}


class Engine(Protocol):
    database: str

    def insert_raw(
        self,
        table: str,
        column_names: Sequence[str],
        payload: bytes,
        fmt: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None: ...

    def insert_arrow(self, table: str, data: pa.Table, settings: Mapping[str, Any] | None = None) -> None: ...

    def command(self, sql: str, settings: Mapping[str, Any] | None = None) -> None: ...

    def query_rows(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]: ...

    def query_raw(
        self,
        sql: str,
        fmt: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bytes: ...

    def query_readonly(self, sql: str, fmt: str) -> bytes:
        """An analyst's statement: checked on ClickHouse's parse of it, run with `readonly = 1` and
        the row and time limits, beside other analysts' statements."""
        ...

    def close(self) -> None: ...


def check_identifier(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain ClickHouse identifier")
    return name


PRETTY_AS_ASKED = "output_format_pretty_fallback_to_vertical"  # not in every server version

# Analysts' statements that run at once on one engine (each on a handle of its own); reads of
# peers (`coex status`, a second worker) have as many handles again.
ANALYST_HANDLES = 4

# ClickHouse refusing, by its error code: READONLY (a write, a setting changed by the query, a
# table function that is not read-only), ACCESS_DENIED. Shown as a refusal, not a failure.
REFUSING_CODES = frozenset({164, 497})

# ClickHouse's words when a `readonly = 1` handle is asked for `SETTINGS final = 1` (CONTRACT.md's
# way to read): the statement then runs on a handle opened with final = 1, where asking for the
# value it already has changes nothing and passes.
FINAL_ASKED = "Cannot modify 'final' setting in readonly mode"


def readonly_settings(settings: Settings) -> dict[str, Any]:
    """Limits for analyst SQL. `readonly` comes last: once set, the handle refuses further SETs,
    and a query may change no setting, so no `SETTINGS max_result_rows = 0` lifts these."""
    return {
        "max_result_rows": settings.sql_max_rows,
        "result_overflow_mode": "throw",
        "max_execution_time": settings.sql_max_seconds,
        "readonly": 1,
    }


class AnalystHandles:
    """One analyst's handles: `plain`, and one with final = 1 opened when a statement asks for it."""

    def __init__(self, open_handle: Callable[[bool], Client]) -> None:
        self._open = open_handle
        self.plain = open_handle(False)
        self.final: Client | None = None

    def with_final(self) -> Client:
        if self.final is None:
            self.final = self._open(True)
        return self.final

    def close(self) -> None:
        for client in (self.plain, self.final):
            if client is not None:
                client.close()


def refusal(exc: Exception) -> StatementRefused | None:
    """ClickHouse's refusal of a statement as StatementRefused; None for any other failure."""
    if isinstance(exc, DatabaseError) and exc.code in REFUSING_CODES:
        return StatementRefused(str(exc).strip().splitlines()[0])
    return None


def _unwrap(type_name: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        if type_name.startswith(wrapper):
            return _unwrap(type_name[len(wrapper) : -1])
    return type_name


def _converter(type_name: str) -> Callable[[Any], Any]:
    base = _unwrap(type_name)
    if base.startswith("DateTime64"):
        return lambda v: None if v is None else datetime.fromtimestamp(float(v), UTC)
    if base.startswith("DateTime"):
        return lambda v: None if v is None else datetime.fromtimestamp(int(v), UTC)
    if base in ("Date", "Date32"):
        return lambda v: None if v is None else date.fromisoformat(v)
    return lambda v: v


def decode_rows(payload: bytes) -> list[tuple[Any, ...]]:
    """Rows of a JSONCompactEachRowWithNamesAndTypes answer; DateTime values as aware UTC datetimes."""
    lines = payload.splitlines()
    if len(lines) < 2:
        return []
    converters = [_converter(t) for t in orjson.loads(lines[1])]
    return [
        tuple(conv(v) for conv, v in zip(converters, orjson.loads(line), strict=True)) for line in lines[2:] if line
    ]


class ArrowInserts:
    """`insert_arrow` for every engine: the table sent as an ArrowStream payload through the engine's
    own `insert_raw` (unless the engine reads Arrow in place)."""

    def insert_raw(
        self,
        table: str,
        column_names: Sequence[str],
        payload: bytes,
        fmt: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        raise NotImplementedError

    def insert_arrow(self, table: str, data: pa.Table, settings: Mapping[str, Any] | None = None) -> None:
        self.insert_raw(table, data.column_names, serialize(data), FORMAT, settings)


class ClientEngine(ArrowInserts):
    """This process's own clickhouse-connect clients: writes, reads, and a read-only one for analysts.

    Reads have handles of their own so a query runs while an insert does (a chdb handle serializes
    its calls), and several side by side; analysts' handles are apart because `readonly` cannot be
    lifted once set on them. On an
    embedded engine, Arrow tables are inserted through a chdb handle of their own that reads them in
    place: no payload to encode, spool to a file and parse (a third less time per batch, measured).
    """

    def __init__(self, url: str, database: str, analyst_settings: Mapping[str, Any], *, create_database: bool):
        self.database = check_identifier(database)
        self.url = url
        self._analyst_settings = dict(analyst_settings)
        self._rw = open_client(url)
        if create_database:
            self._rw.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._rw.database = database
        self._readers: HandlePool[Client] = HandlePool(self._client, ANALYST_HANDLES)
        self._analysts: HandlePool[AnalystHandles] = HandlePool(
            lambda: AnalystHandles(self._analyst_client), ANALYST_HANDLES
        )
        self._arrow: Any = None  # chdb's Connection, opened on the first Arrow insert
        self._arrow_lock = threading.Lock()

    def _client(self, **settings: Any) -> Client:
        client = open_client(self.url, **settings)
        client.database = self.database
        return client

    def _analyst_client(self, final: bool) -> Client:
        limits = dict(self._analyst_settings)
        readonly = limits.pop("readonly", 1)
        client = self._client()
        # A wide result asked for as a table stays a table (ClickHouse turns it Vertical).
        wanted = {**limits, PRETTY_AS_ASKED: 0, **({"final": 1} if final else {}), "readonly": readonly}
        for name, value in wanted.items():
            known = client.server_settings.get(name)
            # A server's own profile for this user may fix a setting (a `readonly = 2` analyst
            # user, deploy/clickhouse-cluster.md); it then holds. PRETTY_AS_ASKED is not in every version.
            if known is not None and not known.readonly:
                client.set_client_setting(name, value)
        return client

    @staticmethod
    def _parse(client: Client, sql: str, *, reading: bool) -> tuple[str, str]:
        """(the statement in ClickHouse's canonical spelling, its EXPLAIN AST), both from the engine's
        parser and neither running it: the statement goes in as a string literal, and formatQuery
        refuses more than one statement."""

        def formatted(text: str) -> str:
            return client.raw_query(f"SELECT formatQuery({sql_string(text)})", fmt="TSVRaw").decode().rstrip("\n")

        canonical = formatted(sql)
        if formatted(canonical) != canonical:
            # The text that runs must parse as the one statement checked.
            raise StatementRefused("the statement does not read back as itself in ClickHouse's spelling")
        if reading:
            check_read_statement(canonical)
        return canonical, client.raw_query(f"EXPLAIN AST {canonical}", fmt="TSVRaw").decode()

    def checked_read(self, sql: str) -> str:
        """`sql` in canonical spelling when it only reads, else StatementRefused (peers' reads)."""
        with self._readers.take() as reader:
            canonical, tree = self._parse(reader, sql, reading=True)
        check_read_only(canonical, tree)
        return canonical

    def checked_insert(self, sql: str, tables: frozenset[str]) -> str:
        """`sql` in canonical spelling when it is an INSERT ... SELECT into one of `tables`."""
        with self._readers.take() as reader:
            canonical, tree = self._parse(reader, sql, reading=False)
        check_table_insert(tree, tables, self.database)
        return canonical

    @property
    def embedded_path(self) -> str:
        target = parse_url(self.url)
        return target.path if target.embedded else ""

    def insert_raw(
        self,
        table: str,
        column_names: Sequence[str],
        payload: bytes,
        fmt: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._rw.raw_insert(
            f"{self.database}.{check_identifier(table)}",
            list(column_names),
            payload,
            settings=dict(settings or {}),
            fmt=fmt,
        )

    def insert_arrow(self, table: str, data: pa.Table, settings: Mapping[str, Any] | None = None) -> None:
        path = self.embedded_path
        if not path:
            super().insert_arrow(table, data, settings)
            return
        sql = arrow_insert_sql(self.database, table, data.column_names, settings or {})
        with self._arrow_lock:
            if self._arrow is None:
                import chdb

                # The same spelling of the path as clickhouse-connect's: chdb compares paths literally.
                self._arrow = chdb.connect(os.path.realpath(path))  # type: ignore[no-untyped-call]
            _insert_in_place(self._arrow, sql, data)

    def command(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        self._rw.command(sql, settings=dict(settings or {}))

    def query_raw(
        self,
        sql: str,
        fmt: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bytes:
        with self._readers.take() as reader:
            return reader.raw_query(
                sql, parameters=dict(parameters or {}), settings=dict(settings or {}), fmt=check_format(fmt)
            )

    def query_rows(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        merged = {**ROWS_SETTINGS, **(settings or {})}
        return decode_rows(self.query_raw(sql, ROWS_FORMAT, parameters, merged))

    def query_readonly(self, sql: str, fmt: str) -> bytes:
        check_format(fmt)
        try:
            with self._analysts.take() as handles:
                client = handles.plain
                try:
                    canonical, tree = self._parse(client, sql, reading=True)
                except DatabaseError as exc:
                    if FINAL_ASKED not in str(exc):
                        raise
                    client = handles.with_final()
                    canonical, tree = self._parse(client, sql, reading=True)
                check_read_only(canonical, tree)
                # The canonical text runs: what was checked is what ClickHouse executes.
                return client.raw_query(canonical, fmt=fmt)
        except DatabaseError as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            raise

    def close(self) -> None:
        for handles in self._analysts.drain():
            handles.close()
        for client in self._readers.drain():
            client.close()
        with self._arrow_lock:
            if self._arrow is not None:
                self._arrow.close()
                self._arrow = None
        self._rw.close()


ARROW_SOURCE = "coex_arrow_insert"


def arrow_insert_sql(database: str, table: str, column_names: Sequence[str], settings: Mapping[str, Any]) -> str:
    """`INSERT ... SELECT` from chdb's `Python()` table function over the local named ARROW_SOURCE."""
    names = ", ".join(map(check_identifier, column_names))
    clause = ", ".join(f"{check_identifier(k)} = {setting_literal(v)}" for k, v in settings.items())
    return (
        f"INSERT INTO {check_identifier(database)}.{check_identifier(table)} ({names})"
        f"{f' SETTINGS {clause}' if clause else ''} SELECT * FROM Python({ARROW_SOURCE})"
    )


def setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"setting value {value!r}: expected a number or a string")


def _insert_in_place(connection: Any, sql: str, coex_arrow_insert: pa.Table) -> None:
    # chdb's Python() table function finds the table by its variable name in the calling frames:
    # this parameter's name is ARROW_SOURCE.
    connection.query(sql)

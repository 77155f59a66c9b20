"""RemoteEngine: the Engine methods over the loopback endpoint of the process that owns an embedded engine.

Reads go through the owner's read-only checks; writes are inserts into coex tables only (so a
second worker can share the embedded engine), and `coex purge`'s one narrow deletion. See
sinks/engine_server.py for the other side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from sinks.engine import ROWS_FORMAT, ROWS_SETTINGS, ArrowInserts, decode_rows
from sinks.owner import Owner, read_owner
from sinks.statements import StatementRefused

log = logging.getLogger(__name__)
# httpx logs every request at INFO: one line per batch or `coex sql` call is noise, not news.
logging.getLogger("httpx").setLevel(logging.WARNING)

TOKEN_HEADER = "X-Coex-Token"
SETTINGS_HEADER = "X-Coex-Settings"
REFUSED = 403


class RemoteError(RuntimeError):
    """The owner ran the request and ClickHouse failed it; the message is ClickHouse's."""


class RemoteEngine(ArrowInserts):
    def __init__(self, owner: Owner, database: str, engine_path: str, *, timeout_s: float = 600.0) -> None:
        self.database = database
        self.engine_path = engine_path
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.owner = owner
        self._http = self._connect(owner)

    def _connect(self, owner: Owner) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{owner.port}", headers={TOKEN_HEADER: owner.token}, timeout=self._timeout
        )

    def _post(self, path: str, **kwargs: Any) -> bytes:
        try:
            response = self._http.post(path, **kwargs)
        except httpx.TransportError:
            self._follow_owner()
            raise
        if response.status_code == 401:
            self._follow_owner()
        if response.status_code == REFUSED:
            raise StatementRefused(_error_text(response))
        if response.status_code >= 300:
            raise RemoteError(_error_text(response))
        return response.content

    def _follow_owner(self) -> None:
        """The owner may have restarted (new port and token): the caller's retry then reaches it."""
        owner = read_owner(self.engine_path)
        if owner is not None and owner != self.owner:
            log.info("the embedded engine %s is now served by pid %d", self.engine_path, owner.pid)
            self._http.close()
            self.owner, self._http = owner, self._connect(owner)

    def owner_alive(self) -> bool:
        """Whether a live process still serves the engine (this one's owner or a successor)."""
        return read_owner(self.engine_path) is not None

    def ping(self) -> bool:
        try:
            response = self._http.get("/ping", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def insert_raw(
        self,
        table: str,
        column_names: Sequence[str],
        payload: bytes,
        fmt: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        params = {"table": table, "columns": ",".join(column_names), "format": fmt, "database": self.database}
        headers = {SETTINGS_HEADER: orjson.dumps(dict(settings or {})).decode()}
        self._post("/insert", params=params, content=payload, headers=headers)

    def command(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        body = {"sql": sql, "settings": dict(settings or {}), "database": self.database}
        self._post("/command", content=orjson.dumps(body))

    def purge(self, phone_number_id: str, waba_id: str) -> dict[str, int]:
        """Delete every row of one business on the owner (sinks/purge.py); the rows each table held."""
        body = {"phone_number_id": phone_number_id, "waba_id": waba_id, "database": self.database}
        counts = orjson.loads(self._post("/purge", content=orjson.dumps(body)))
        return {str(table): int(n) for table, n in counts.items()}

    def query_raw(
        self,
        sql: str,
        fmt: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bytes:
        body = {
            "sql": sql,
            "format": fmt,
            "parameters": dict(parameters or {}),
            "settings": dict(settings or {}),
            "database": self.database,
            "analyst": False,
        }
        return self._post("/query", content=orjson.dumps(body))

    def query_rows(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        merged = {**ROWS_SETTINGS, **(settings or {})}
        return decode_rows(self.query_raw(sql, ROWS_FORMAT, parameters, merged))

    def query_readonly(self, sql: str, fmt: str) -> bytes:
        body = {"sql": sql, "format": fmt, "database": self.database, "analyst": True}
        return self._post("/query", content=orjson.dumps(body))

    def close(self) -> None:
        self._http.close()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(orjson.loads(response.content)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"engine endpoint answered {response.status_code}"


def connect_owner(engine_path: str, database: str) -> RemoteEngine | None:
    """A RemoteEngine when another live process serves `engine_path`, else None (open it directly)."""
    owner = read_owner(engine_path)
    if owner is None or owner.pid == os.getpid():
        return None
    remote = RemoteEngine(owner, database, engine_path)
    if remote.ping():
        return remote
    remote.close()
    log.warning("the owner (pid %d) of %s does not answer on port %d", owner.pid, engine_path, owner.port)
    return None

"""The loopback endpoint of the process that owns an embedded engine (a `coex worker` or `coex dev`).

`async with serve_engine(engine, settings):` listens on 127.0.0.1:`settings.sql_port` (any free
port when that one is taken), writes `<engine path>/.coex-owner.json` and removes it on exit.
Peers (`coex sql`, a second worker) find it through `open_engine`. Every request carries the token
from the owner file; reads must pass the read-only check; writes must be INSERTs into coex tables
(both judged on the engine's own parse, sinks/statements.py), or `/purge`, which takes a business's
ids and runs only sinks/purge.py's deletion of it. Analysts' statements run on threads
of their own, side by side, so a slow one holds up neither the others nor the peers' writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiohttp import web

from runtime.settings import Settings
from sinks.encode import FORMAT, deserialize
from sinks.engine import ANALYST_HANDLES, ClientEngine, check_identifier
from sinks.owner import Owner, remove_owner, write_owner
from sinks.purge import Business, check_id, delete_rows
from sinks.remote import REFUSED, SETTINGS_HEADER, TOKEN_HEADER
from sinks.statements import StatementRefused
from sinks.tables import WRITABLE_TABLES, columns

log = logging.getLogger(__name__)

# The only settings a peer may attach to an insert or a write command.
PEER_WRITE_SETTINGS = frozenset({"insert_deduplication_token", "max_query_size", "optimize_on_insert"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")


def _peer_settings(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise StatementRefused("settings must be an object")
    extra = set(raw) - PEER_WRITE_SETTINGS
    if extra:
        raise StatementRefused(f"settings not allowed through the endpoint: {', '.join(sorted(extra))}")
    return raw


class EngineEndpoint:
    def __init__(self, engine: ClientEngine, token: str, analysts: ThreadPoolExecutor) -> None:
        self.engine = engine
        self.token = token
        self.analysts = analysts

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return _error(401, "missing or wrong endpoint token (see the engine's .coex-owner.json)")
        try:
            return await handler(request)
        except StatementRefused as exc:
            return _error(REFUSED, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"bad request: {exc}")
        except Exception as exc:
            return _error(500, str(exc))

    def _same_database(self, database: Any) -> None:
        if database != self.engine.database:
            raise StatementRefused(
                f"this endpoint serves database {self.engine.database}, not {database}: set "
                f"COEX_CLICKHOUSE_DATABASE={self.engine.database} and name another database's tables as db.table"
            )

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), "database": self.engine.database})

    async def query(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self._same_database(body.get("database"))
        sql, fmt = str(body["sql"]), str(body["format"])
        if body.get("analyst", True):
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.analysts, self.engine.query_readonly, sql, fmt)
        else:
            statement = await asyncio.to_thread(self.engine.checked_read, sql)
            result = await asyncio.to_thread(
                self.engine.query_raw, statement, fmt, body.get("parameters") or {}, body.get("settings") or {}
            )
        return web.Response(body=result)

    async def command(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self._same_database(body.get("database"))
        settings = _peer_settings(body.get("settings") or {})
        statement = await asyncio.to_thread(self.engine.checked_insert, str(body["sql"]), WRITABLE_TABLES)
        await asyncio.to_thread(self.engine.command, statement, settings)
        return web.Response(status=204)

    async def insert(self, request: web.Request) -> web.Response:
        self._same_database(request.query.get("database"))
        table = request.query["table"]
        if table not in WRITABLE_TABLES:
            raise StatementRefused(f"{table} is not a coex table")
        names = [check_identifier(name) for name in request.query["columns"].split(",")]
        unknown = set(names) - set(columns(table))
        if unknown:
            raise StatementRefused(f"{table} has no column {', '.join(sorted(unknown))}")
        settings = _peer_settings(orjson.loads(request.headers.get(SETTINGS_HEADER, "{}")))
        payload = await request.read()
        fmt = check_identifier(request.query["format"])
        if fmt == FORMAT:
            # Read in place, as the owner's own batches are: no temp file for the engine to parse.
            data = await asyncio.to_thread(deserialize, payload)
            if data.column_names != names:
                raise StatementRefused(f"the payload's columns {data.column_names} are not the columns named {names}")
            await asyncio.to_thread(self.engine.insert_arrow, table, data, settings)
        else:
            await asyncio.to_thread(self.engine.insert_raw, table, names, payload, fmt, settings)
        return web.Response(status=204)

    async def purge(self, request: web.Request) -> web.Response:
        """`coex purge`'s deletion of one business (sinks/purge.py): only ids, never SQL, come in."""
        body = orjson.loads(await request.read())
        self._same_database(body.get("database"))
        try:
            business = Business(
                check_id(str(body["phone_number_id"]), "phone_number_id"),
                check_id(str(body["waba_id"]), "waba_id") if body.get("waba_id") else "",
            )
        except ValueError as exc:
            raise StatementRefused(str(exc)) from exc
        counts = await asyncio.to_thread(delete_rows, self.engine, business)
        return web.json_response(counts)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=1024**3)
        app.router.add_get("/ping", self.ping)
        app.router.add_post("/query", self.query)
        app.router.add_post("/command", self.command)
        app.router.add_post("/insert", self.insert)
        app.router.add_post("/purge", self.purge)
        return app


def _listen(port: int) -> socket.socket:
    """A loopback socket on `port`, or on any free port when that one is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            sock.close()
            raise
        log.warning("port %d is taken; the engine endpoint listens on a free port instead", port)
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_engine(engine: ClientEngine, settings: Settings) -> AsyncIterator[Owner]:
    """Serve `engine` (an embedded one this process opened) to peer processes while the block runs."""
    path = engine.embedded_path
    if not path:
        raise ValueError("serve_engine is for an embedded engine (chdb:///path); servers need no endpoint")
    sock = _listen(settings.sql_port)
    owner = Owner(pid=os.getpid(), port=sock.getsockname()[1], token=secrets.token_hex(16))
    analysts = ThreadPoolExecutor(ANALYST_HANDLES, thread_name_prefix="coex-sql")
    runner = web.AppRunner(EngineEndpoint(engine, owner.token, analysts).app(), access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        write_owner(path, owner)
        log.info("embedded ClickHouse %s served on 127.0.0.1:%d", path, owner.port)
        try:
            yield owner
        finally:
            remove_owner(path, owner)
    finally:
        await runner.cleanup()
        sock.close()
        analysts.shutdown(wait=False, cancel_futures=True)

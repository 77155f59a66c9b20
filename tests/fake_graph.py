"""A fake Graph API for tests and for trying `coex onboard` locally: the calls of onboarding, answered
as the platform documents them (shared/reference/coexistence-webhooks-spec.txt), errors included.

    with FakeGraph() as graph:            # serves on 127.0.0.1, a free port
        settings = Settings(graph_api_url=graph.url, ...)
        ...
        assert [c.path for c in graph.calls] == [...]

`python -m tests.fake_graph --port 8999` serves it until Ctrl-C and prints each call.

What it does: exchanges a known signup code for a business token (once: a used code is refused, as
Graph does); checks the bearer token of every other call; answers a number's `is_on_biz_app` and
`platform_type` (configurable per number; an unknown numeric id is a number on the app); answers each
`smb_app_data` sync type once per onboarding with a fresh `request_id` and refuses a repeat; answers
scripted failures (`fail`) and loses answers after acting (`lose_answer`). Every call is recorded.
The Graph error for a repeated sync is not documented; the fake's (code 100, "can be requested once")
is its own choice, so callers should not depend on its exact text.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
import uvicorn
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

DEFAULT_APP_ID = "fake-app-id"
DEFAULT_CODE = "fake-signup-code"
DEFAULT_TOKEN = "fake-business-token"
SYNC_TYPES = ("smb_app_state_sync", "history")


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, None if there was none or it was not JSON
    authorization: str | None
    status: int  # what the fake answered; 0 when it dropped the connection instead


@dataclass(slots=True)
class Number:
    is_on_biz_app: bool = True
    platform_type: str = "CLOUD_API"
    syncs: dict[str, str] = field(default_factory=dict)  # sync_type -> request_id of this onboarding


@dataclass(slots=True)
class _Failure:
    method: str
    path_suffix: str
    status: int
    body: dict[str, Any]
    times: int
    retry_after: str | None
    act_first: bool  # carry the call out, then answer the failure (or drop, status 0)


def _trace_id() -> str:
    return secrets.token_urlsafe(8)


def graph_error(
    status: int, code: int, message: str, *, type: str = "OAuthException", subcode: int | None = None
) -> dict[str, Any]:
    """A Graph error body as the platform writes it."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code, "fbtrace_id": _trace_id()}
    if subcode is not None:
        error["error_subcode"] = subcode
    if status >= 500 or code in (2, 4):
        error["is_transient"] = True
    return {"error": error}


def _default_failure_body(status: int) -> dict[str, Any]:
    if status == 429:
        return graph_error(status, 4, "(#4) Application request limit reached")
    if status >= 500:
        return graph_error(status, 2, "An unexpected error has occurred. Please retry your request later.")
    return graph_error(status, 100, "(#100) Invalid parameter")


def _missing_object(method: str, object_id: str) -> dict[str, Any]:
    return graph_error(
        400,
        100,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be loaded due to"
        " missing permissions, or does not support this operation.",
        type="GraphMethodException",
        subcode=33,
    )


class FakeGraph:
    """The fake Graph API, served in a background thread while the context is open."""

    def __init__(
        self,
        *,
        port: int = 0,
        app_id: str | None = None,
        app_secret: str | None = None,
        codes: dict[str, str] | None = None,
        tokens: set[str] | None = None,
        single_use_codes: bool = True,
        on_sync: Callable[[str, str], None] | None = None,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        """`app_id`/`app_secret`: None accepts any client_id/client_secret. `codes`: signup code ->
        the token it exchanges for. `tokens`: bearer tokens accepted besides the exchanged ones (a
        system user's). `on_sync(pnid, sync_type)` runs on the server's thread after a sync is accepted."""
        self.app_id = app_id
        self.app_secret = app_secret
        self.codes = dict(codes if codes is not None else {DEFAULT_CODE: DEFAULT_TOKEN})
        self.tokens = set(tokens if tokens is not None else {DEFAULT_TOKEN})
        self.single_use_codes = single_use_codes
        self.used_codes: set[str] = set()
        self.numbers: dict[str, Number] = {}
        self.subscribed: list[str] = []  # WABA ids, one per subscribed_apps call that passed
        self.calls: list[Call] = []
        self.on_sync = on_sync
        self.on_call = on_call
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # Configuration, from the test's thread.

    def set_number(self, phone_number_id: str, *, is_on_biz_app: bool = True, platform_type: str = "CLOUD_API") -> None:
        with self._lock:
            number = self.numbers.setdefault(phone_number_id, Number())
            number.is_on_biz_app = is_on_biz_app
            number.platform_type = platform_type

    def offboard(self, phone_number_id: str) -> None:
        """The business left: a new onboarding of the number may request its syncs again."""
        with self._lock:
            if phone_number_id in self.numbers:
                self.numbers[phone_number_id].syncs.clear()

    def syncs(self, phone_number_id: str) -> dict[str, str]:
        """The sync types requested in the number's current onboarding, with their request_id."""
        with self._lock:
            number = self.numbers.get(phone_number_id)
            return dict(number.syncs) if number else {}

    def fail(
        self,
        method: str,
        path_suffix: str,
        status: int,
        error_body: dict[str, Any] | None = None,
        times: int = 1,
        *,
        retry_after: str | None = None,
    ) -> None:
        """The next `times` calls of `method` whose path ends with `path_suffix` answer `status` with
        `error_body` (a Graph error fitting the status by default), without acting."""
        body = error_body if error_body is not None else _default_failure_body(status)
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_suffix, status, body, times, retry_after, False))

    def lose_answer(self, method: str, path_suffix: str, times: int = 1) -> None:
        """The next `times` matching calls are carried out, then the connection drops before the answer."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_suffix, 0, {}, times, None, True))

    def calls_to(self, path_suffix: str, method: str | None = None) -> list[Call]:
        return [c for c in list(self.calls) if c.path.endswith(path_suffix) and method in (None, c.method)]

    # Serving.

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("FakeGraph is not serving: use it as a context manager")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self._port))
        config = uvicorn.Config(self, log_level="warning", access_log=False, lifespan="off", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-graph", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._socket is not None:
            self._socket.close()

    # The ASGI app, on the server's thread.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        method = request.method
        path = request.url.path
        query = dict(request.query_params)
        authorization = request.headers.get("authorization")
        failure = self._take_failure(method, path)
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        if failure is not None and not failure.act_first:
            status, answer = failure.status, failure.body
            if failure.retry_after is not None:
                headers.append((b"retry-after", failure.retry_after.encode()))
        else:
            status, answer = self._answer(method, path, query, body, authorization)
        if failure is not None and failure.act_first:
            self._record(Call(method, path, query, body, authorization, 0))
            # A response begun and cut short: the client reads a broken answer, as when a connection drops.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise ConnectionAbortedError("fake Graph API: answer lost on purpose")
        self._record(Call(method, path, query, body, authorization, status))
        content = orjson.dumps(answer)
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and path.endswith(failure.path_suffix) and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: Any, authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[1:] == ["oauth", "access_token"] and method == "GET":
            return self._exchange(query)
        if not self._authorized(authorization):
            return 401, graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if len(parts) == 3 and parts[2] == "subscribed_apps" and method == "POST":
            with self._lock:
                self.subscribed.append(parts[1])
            return 200, {"success": True}
        if len(parts) == 2 and method == "GET":
            return self._phone_number(parts[1], query)
        if len(parts) == 3 and parts[2] == "smb_app_data" and method == "POST":
            return self._sync(parts[1], body)
        return 400, _missing_object(method, parts[1] if len(parts) > 1 else "")

    def _exchange(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not query.get("client_id") or (self.app_id is not None and query["client_id"] != self.app_id):
            return 400, graph_error(400, 101, "Error validating application. Invalid application ID.")
        if not query.get("client_secret") or (
            self.app_secret is not None and query["client_secret"] != self.app_secret
        ):
            return 400, graph_error(400, 1, "Error validating client secret.")
        code = query.get("code", "")
        with self._lock:
            if code in self.used_codes:
                return 400, graph_error(400, 100, "This authorization code has been used.", subcode=36009)
            token = self.codes.get(code)
            if token is None:
                return 400, graph_error(400, 100, "Invalid verification code format.", subcode=36007)
            if self.single_use_codes:
                self.used_codes.add(code)
            self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "bearer"}

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token in self.tokens

    def _number(self, object_id: str) -> Number | None:
        """The number with this id; an unknown numeric id is a number on the app (ids in tests are free)."""
        if not object_id.isdigit():
            return None
        with self._lock:
            return self.numbers.setdefault(object_id, Number())

    def _phone_number(self, object_id: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        number = self._number(object_id)
        if number is None:
            return 400, _missing_object("GET", object_id)
        fields = {"is_on_biz_app": number.is_on_biz_app, "platform_type": number.platform_type}
        wanted = [f for f in query.get("fields", "").split(",") if f]
        return 200, {**{f: fields[f] for f in wanted if f in fields}, "id": object_id}

    def _sync(self, object_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        number = self._number(object_id)
        if number is None:
            return 400, _missing_object("POST", object_id)
        sync_type = body.get("sync_type") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp" or sync_type not in SYNC_TYPES:
            return 400, graph_error(400, 100, "(#100) Invalid parameter")
        with self._lock:
            if sync_type in number.syncs:
                return 400, graph_error(
                    400,
                    100,
                    f"(#100) {sync_type} was already requested for this phone number: it can be requested once"
                    " per onboarding",
                )
            request_id = uuid.uuid4().hex
            number.syncs[sync_type] = request_id
        if self.on_sync is not None:
            self.on_sync(object_id, sync_type)
        return 200, {"messaging_product": "whatsapp", "request_id": request_id}


def _print_call(call: Call) -> None:
    hidden = {"client_secret", "code"}
    query = "&".join(f"{k}={'***' if k in hidden else v}" for k, v in call.query.items())
    sync = f" {call.body.get('sync_type')}" if isinstance(call.body, dict) and "sync_type" in call.body else ""
    print(f"{call.method} {call.path}{'?' + query if query else ''}{sync} -> {call.status or 'dropped'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_graph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--code", default=DEFAULT_CODE, help="the signup code it exchanges")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the business token the code exchanges for")
    args = parser.parse_args(argv)
    with FakeGraph(port=args.port, codes={args.code: args.token}, tokens={args.token}, on_call=_print_call) as graph:
        print(f"fake Graph API on {graph.url}: COEX_GRAPH_API_URL={graph.url} COEX_META_APP_ID=<any>", flush=True)
        print(f"signup code {args.code!r} (once), token {args.token!r}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

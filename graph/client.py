"""The Graph API calls of onboarding: the code exchange, the app's subscription to a WABA, the
number's state, and the two sync requests. Async, on httpx.

Every call is retried while its failure is transient (the network, 5xx, 429, a code the platform
marks temporary) and the time spent stays under `settings.graph_retry_max_s`; a permanent error is
raised at once with the platform's message. A sync request must be made only once, so it is not
sent again when its answer is lost on the way back (the error says `outcome_unknown`): only
failures that show the platform did not take it (no connection, 5xx, 429) are retried.

Tokens are `SecretStr` until they go into the Authorization header; no log line, error or repr
holds one (graph/redact.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import orjson
from pydantic import SecretStr

from graph.errors import GraphError, parse_error, retry_after
from graph.redact import protect_httpx_logs, scrub
from graph.retry import next_delay
from runtime.settings import Settings

log = logging.getLogger(__name__)

SyncType = Literal["smb_app_state_sync", "history"]
SYNC_TYPES: tuple[SyncType, ...] = ("smb_app_state_sync", "history")
Sleep = Callable[[float], Awaitable[None]]

# Failures that happen before a request leaves: the platform cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    is_on_biz_app: bool
    platform_type: str


class GraphClient:
    """`async with GraphClient(settings) as graph: await graph.subscribe_app(waba_id, token)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._version = settings.graph_api_version.strip("/")
        self._http = httpx.AsyncClient(
            base_url=settings.graph_api_url.rstrip("/"), timeout=_TIMEOUT, transport=transport, follow_redirects=False
        )
        protect_httpx_logs()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"GraphClient(url={self._settings.graph_api_url!r}, version={self._version!r})"

    async def exchange_code(self, code: str | SecretStr) -> SecretStr:
        """The business token an Embedded Signup code stands for."""
        code_value = code.get_secret_value() if isinstance(code, SecretStr) else code
        app_id = self._settings.meta_app_id
        app_secret = self._settings.app_secret
        if not app_id or app_secret is None or not app_secret.get_secret_value():
            missing = "COEX_META_APP_ID" if not app_id else "COEX_APP_SECRET"
            raise GraphError.local(f"{missing} is not set: it is needed to exchange a signup code")
        params = {"client_id": app_id, "client_secret": app_secret.get_secret_value(), "code": code_value}
        secrets = (app_secret.get_secret_value(), code_value)
        answer = await self._call("GET", "oauth/access_token", secrets=secrets, params=params)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise GraphError.local("the code exchange answered no access_token", status=200)
        return SecretStr(token)

    async def subscribe_app(self, waba_id: str, token: SecretStr | None = None) -> None:
        """Subscribe the app to the WABA's webhooks (idempotent on the platform's side)."""
        bearer = self._token(token)
        answer = await self._call("POST", f"{waba_id}/subscribed_apps", token=bearer)
        if answer.get("success") is not True:
            raise GraphError.local(f"subscribed_apps did not answer success: {_brief(answer)}", status=200)

    async def phone_number(self, phone_number_id: str, token: SecretStr | None = None) -> PhoneInfo:
        """Whether the number is on the WhatsApp Business app and which platform it uses."""
        bearer = self._token(token)
        answer = await self._call(
            "GET", phone_number_id, token=bearer, params={"fields": "is_on_biz_app,platform_type"}
        )
        platform_type = answer.get("platform_type")
        return PhoneInfo(
            is_on_biz_app=answer.get("is_on_biz_app") is True,
            platform_type=platform_type if isinstance(platform_type, str) else "",
        )

    async def request_sync(self, phone_number_id: str, sync_type: SyncType, token: SecretStr | None = None) -> str:
        """Ask for the contacts (`smb_app_state_sync`) or history sync; the platform's `request_id`
        ('' when an accepted request came back without one)."""
        if sync_type not in SYNC_TYPES:
            raise ValueError(f"sync_type must be one of {SYNC_TYPES}, not {sync_type!r}")
        bearer = self._token(token)
        body = {"messaging_product": "whatsapp", "sync_type": sync_type}
        answer = await self._call("POST", f"{phone_number_id}/smb_app_data", token=bearer, json=body, once=True)
        request_id = answer.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            log.warning("graph: %s sync of %s accepted without a request_id", sync_type, phone_number_id)
            return ""
        return request_id

    def _token(self, token: SecretStr | None) -> SecretStr:
        chosen = token if token is not None else self._settings.graph_token
        if chosen is None or not chosen.get_secret_value():
            raise GraphError.local("no token: pass a business token or set COEX_GRAPH_TOKEN")
        return chosen

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: SecretStr | None = None,
        params: dict[str, str] | None = None,
        json: dict[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        once: bool = False,
    ) -> dict[str, Any]:
        """One Graph call, retried while transient; its JSON object answer."""
        url = f"/{self._version}/{path}"
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        hidden = (*secrets, token.get_secret_value()) if token is not None else secrets
        spent = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            outcome, wait_s = await self._attempt(method, url, headers, params, json, hidden, once)
            spent += time.monotonic() - started
            if not isinstance(outcome, GraphError):
                return outcome
            error = outcome
            error.attempts = attempt
            if not error.transient or error.outcome_unknown:
                raise error
            delay = next_delay(attempt, self._rng, wait_s)
            if spent + delay > self._settings.graph_retry_max_s:
                raise error
            log.warning("graph: %s %s failed (%s); retrying in %.1f s", method, url, _short(error), delay)
            await self._sleep(delay)
            spent += delay

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, str] | None,
        json: dict[str, str] | None,
        hidden: tuple[str, ...],
        once: bool,
    ) -> tuple[dict[str, Any] | GraphError, float | None]:
        """One try: the answer's JSON object, or the error and the Retry-After it asked for."""
        try:
            response = await self._http.request(method, url, headers=headers, params=params, json=json)
        except httpx.TransportError as exc:
            sent = not isinstance(exc, _NOT_SENT)
            text = scrub(f"{type(exc).__name__}: {exc}", hidden)
            return GraphError.local(text, transient=True, outcome_unknown=once and sent), None
        if response.is_success:
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                answer = None
            if isinstance(answer, dict):
                return answer, None
            text = f"unreadable answer: {scrub(response.text[:200], hidden)!r}"
            return GraphError.local(text, status=response.status_code, outcome_unknown=once), None
        error = parse_error(response.status_code, response.content)
        error.message = scrub(error.message, hidden)
        error.args = (error.message,)
        return error, retry_after(response.headers)


def _short(error: GraphError) -> str:
    where = f"HTTP {error.status}" if error.status is not None else "no answer"
    code = f", code {error.code}" if error.code is not None else ""
    return f"{where}{code}: {error.message}"


def _brief(answer: dict[str, Any]) -> str:
    return orjson.dumps(answer).decode()[:200]

"""The Graph API client against the fake Graph API (a real HTTP server in this process)."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from graph import GraphClient, GraphError, PhoneInfo
from runtime.settings import Settings
from tests.fake_graph import DEFAULT_CODE, DEFAULT_TOKEN, FakeGraph, graph_error

APP_ID = "1234567890"
APP_SECRET = "app-secret-0f9e8d7c6b5a"
CODE = "signup-code-AQDx8aLq"
TOKEN = "EAAGm0PX4ZCpsBAKZCbusinessToken"
WABA = "102290129340398"
PNID = "106540352242922"


class Sleeps:
    """An injected sleep: records the delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph(app_id=APP_ID, app_secret=APP_SECRET, codes={CODE: TOKEN}, tokens={TOKEN}) as graph:
        yield graph


def settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "graph_api_url": url,
        "meta_app_id": APP_ID,
        "app_secret": SecretStr(APP_SECRET),
        "graph_retry_max_s": 60.0,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def client(url: str, sleeps: Sleeps, **overrides: object) -> GraphClient:
    return GraphClient(settings(url, **overrides), sleep=sleeps, rng=random.Random(7))


async def test_each_call_has_its_path_method_headers_and_body(fake: FakeGraph) -> None:
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        token = await graph.exchange_code(CODE)
        await graph.subscribe_app(WABA, token)
        info = await graph.phone_number(PNID, token)
        contacts = await graph.request_sync(PNID, "smb_app_state_sync", token)
        history = await graph.request_sync(PNID, "history", token)

    assert token.get_secret_value() == TOKEN
    assert info == PhoneInfo(is_on_biz_app=True, platform_type="CLOUD_API")
    assert fake.syncs(PNID) == {"smb_app_state_sync": contacts, "history": history}
    assert contacts and history and contacts != history
    assert [(c.method, c.path) for c in fake.calls] == [
        ("GET", "/v24.0/oauth/access_token"),
        ("POST", f"/v24.0/{WABA}/subscribed_apps"),
        ("GET", f"/v24.0/{PNID}"),
        ("POST", f"/v24.0/{PNID}/smb_app_data"),
        ("POST", f"/v24.0/{PNID}/smb_app_data"),
    ]
    exchange, subscribe, number, sync_contacts, sync_history = fake.calls
    assert exchange.query == {"client_id": APP_ID, "client_secret": APP_SECRET, "code": CODE}
    assert exchange.authorization is None
    assert {c.authorization for c in fake.calls[1:]} == {f"Bearer {TOKEN}"}
    assert number.query == {"fields": "is_on_biz_app,platform_type"}
    assert subscribe.body is None
    assert sync_contacts.body == {"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"}
    assert sync_history.body == {"messaging_product": "whatsapp", "sync_type": "history"}
    assert sleeps.delays == []


async def test_the_number_off_the_business_app_is_reported_as_it_is(fake: FakeGraph) -> None:
    fake.set_number(PNID, is_on_biz_app=False, platform_type="NOT_APPLICABLE")
    async with client(fake.url, Sleeps()) as graph:
        info = await graph.phone_number(PNID, SecretStr(TOKEN))
    assert info == PhoneInfo(is_on_biz_app=False, platform_type="NOT_APPLICABLE")


async def test_the_system_token_is_used_when_no_token_is_given(fake: FakeGraph) -> None:
    fake.tokens.add("system-user-token-123")
    async with client(fake.url, Sleeps(), graph_token=SecretStr("system-user-token-123")) as graph:
        await graph.subscribe_app(WABA)
    assert fake.calls[0].authorization == "Bearer system-user-token-123"


async def test_without_any_token_nothing_is_sent(fake: FakeGraph) -> None:
    async with client(fake.url, Sleeps()) as graph:
        with pytest.raises(GraphError, match="COEX_GRAPH_TOKEN"):
            await graph.subscribe_app(WABA)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"meta_app_id": None}, "COEX_META_APP_ID"), ({"app_secret": None}, "COEX_APP_SECRET")],
)
async def test_the_code_exchange_needs_the_app_id_and_secret(
    fake: FakeGraph, overrides: dict[str, object], named: str
) -> None:
    async with client(fake.url, Sleeps(), **overrides) as graph:
        with pytest.raises(GraphError, match=named) as raised:
            await graph.exchange_code(CODE)
    assert not raised.value.transient
    assert fake.calls == []


async def test_a_used_code_is_refused_at_once_with_the_platforms_error(fake: FakeGraph) -> None:
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        await graph.exchange_code(CODE)
        with pytest.raises(GraphError) as raised:
            await graph.exchange_code(CODE)
    error = raised.value
    assert (error.status, error.code, error.subcode, error.type) == (400, 100, 36009, "OAuthException")
    assert error.message == "This authorization code has been used."
    assert not error.transient and error.attempts == 1
    assert len(fake.calls) == 2 and sleeps.delays == []


async def test_a_wrong_client_secret_is_not_retried(fake: FakeGraph) -> None:
    sleeps = Sleeps()
    async with client(fake.url, sleeps, app_secret=SecretStr("not-the-app-secret")) as graph:
        with pytest.raises(GraphError, match="Error validating client secret") as raised:
            await graph.exchange_code(CODE)
    assert raised.value.code == 1 and not raised.value.transient
    assert len(fake.calls) == 1 and sleeps.delays == []


async def test_a_permanent_error_is_raised_at_once_with_every_field(fake: FakeGraph) -> None:
    body = {
        "error": {
            "message": "(#200) Permissions error",
            "type": "OAuthException",
            "code": 200,
            "error_subcode": 2494020,
            "fbtrace_id": "AbCdEfGh123",
        }
    }
    fake.fail("POST", "/subscribed_apps", 403, body)
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        with pytest.raises(GraphError) as raised:
            await graph.subscribe_app(WABA, SecretStr(TOKEN))
    error = raised.value
    assert (error.status, error.code, error.subcode, error.type, error.fbtrace_id) == (
        403,
        200,
        2494020,
        "OAuthException",
        "AbCdEfGh123",
    )
    assert error.message == "(#200) Permissions error"
    assert not error.transient
    assert "(#200) Permissions error" in str(error) and "AbCdEfGh123" in str(error)
    assert len(fake.calls) == 1 and sleeps.delays == []


async def test_a_repeated_sync_is_refused_by_the_platform(fake: FakeGraph) -> None:
    async with client(fake.url, Sleeps()) as graph:
        await graph.request_sync(PNID, "history", SecretStr(TOKEN))
        with pytest.raises(GraphError, match="once") as raised:
            await graph.request_sync(PNID, "history", SecretStr(TOKEN))
    assert raised.value.code == 100 and not raised.value.transient


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_5xx_and_429_are_retried_then_the_call_passes(fake: FakeGraph, status: int) -> None:
    fake.fail("POST", "/smb_app_data", status, times=2)
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        request_id = await graph.request_sync(PNID, "smb_app_state_sync", SecretStr(TOKEN))
    assert request_id == fake.syncs(PNID)["smb_app_state_sync"]
    assert [c.status for c in fake.calls] == [status, status, 200]
    # Full jitter: each wait drawn between 0 and the doubling bound (0.5 s, then 1 s).
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.5 and 0 <= sleeps.delays[1] <= 1.0


@pytest.mark.parametrize(
    "error_body",
    [
        graph_error(400, 80007, "(#80007) Rate limit issues"),
        graph_error(400, 130429, "(#130429) Rate limit hit"),
        {"error": {"message": "(#100) Temporary", "type": "OAuthException", "code": 100, "is_transient": True}},
    ],
)
async def test_errors_the_platform_marks_temporary_are_retried(fake: FakeGraph, error_body: dict[str, object]) -> None:
    fake.fail("GET", f"/{PNID}", 400, error_body, times=1)
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        await graph.phone_number(PNID, SecretStr(TOKEN))
    assert [c.status for c in fake.calls] == [400, 200]
    assert len(sleeps.delays) == 1


async def test_retry_after_is_honoured(fake: FakeGraph) -> None:
    fake.fail("GET", f"/{PNID}", 429, times=1, retry_after="7")
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        await graph.phone_number(PNID, SecretStr(TOKEN))
    assert sleeps.delays == [7.0]


async def test_a_retry_after_beyond_the_limit_raises_without_waiting(fake: FakeGraph) -> None:
    fake.fail("GET", f"/{PNID}", 503, times=1, retry_after="3600")
    sleeps = Sleeps()
    async with client(fake.url, sleeps, graph_retry_max_s=120.0) as graph:
        with pytest.raises(GraphError) as raised:
            await graph.phone_number(PNID, SecretStr(TOKEN))
    assert raised.value.status == 503 and raised.value.transient
    assert sleeps.delays == [] and len(fake.calls) == 1


async def test_transient_failures_stop_at_the_retry_limit(fake: FakeGraph) -> None:
    fake.fail("POST", "/subscribed_apps", 503, times=1000)
    sleeps = Sleeps()
    async with client(fake.url, sleeps, graph_retry_max_s=10.0) as graph:
        with pytest.raises(GraphError) as raised:
            await graph.subscribe_app(WABA, SecretStr(TOKEN))
    error = raised.value
    assert error.status == 503 and error.code == 2 and error.transient
    assert error.attempts == len(fake.calls) == len(sleeps.delays) + 1
    assert error.attempts > 3
    assert sum(sleeps.delays) <= 10.0
    assert f"after {error.attempts} attempts" in str(error)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_retried_until_the_server_answers() -> None:
    port = _unused_port()
    server = FakeGraph(port=port, tokens={TOKEN})
    started: list[FakeGraph] = []

    async def sleep_then_start(seconds: float) -> None:
        if len(started) == 0 and seconds >= 0:
            started.append(server.__enter__())

    try:
        async with GraphClient(settings(f"http://127.0.0.1:{port}"), sleep=sleep_then_start) as graph:
            request_id = await graph.request_sync(PNID, "history", SecretStr(TOKEN))
    finally:
        if started:
            server.__exit__(None, None, None)
    assert started and request_id == server.syncs(PNID)["history"]
    assert len(server.calls) == 1


async def test_a_refused_connection_stops_at_the_retry_limit() -> None:
    sleeps = Sleeps()
    async with client(f"http://127.0.0.1:{_unused_port()}", sleeps, graph_retry_max_s=5.0) as graph:
        with pytest.raises(GraphError, match="ConnectError") as raised:
            await graph.phone_number(PNID, SecretStr(TOKEN))
    error = raised.value
    assert error.status is None and error.transient and not error.outcome_unknown
    assert error.attempts == len(sleeps.delays) + 1 > 1


async def test_a_lost_answer_to_a_sync_request_is_not_sent_again(fake: FakeGraph) -> None:
    fake.lose_answer("POST", "/smb_app_data")
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        with pytest.raises(GraphError) as raised:
            await graph.request_sync(PNID, "history", SecretStr(TOKEN))
    assert raised.value.outcome_unknown and raised.value.status is None
    assert len(fake.calls) == 1 and sleeps.delays == []
    assert "history" in fake.syncs(PNID)  # the platform took it


async def test_a_lost_answer_to_a_read_is_retried(fake: FakeGraph) -> None:
    fake.lose_answer("GET", f"/{PNID}")
    sleeps = Sleeps()
    async with client(fake.url, sleeps) as graph:
        info = await graph.phone_number(PNID, SecretStr(TOKEN))
    assert info.is_on_biz_app
    assert [c.status for c in fake.calls] == [0, 200]


async def test_an_unknown_sync_type_is_refused_before_any_call(fake: FakeGraph) -> None:
    async with client(fake.url, Sleeps()) as graph:
        with pytest.raises(ValueError, match="sync_type"):
            await graph.request_sync(PNID, "contacts", SecretStr(TOKEN))  # type: ignore[arg-type]
    assert fake.calls == []


async def test_no_secret_in_logs_errors_or_reprs(fake: FakeGraph, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # sinks.remote quiets it for the rest of a process
    # Graph echoes a malformed token in its message; the retries log warnings.
    fake.fail("GET", f"/{PNID}", 503, times=2)
    fake.fail("POST", "/subscribed_apps", 400, graph_error(400, 190, f"Malformed access token {TOKEN}"))
    sleeps = Sleeps()
    errors: list[GraphError] = []
    async with client(fake.url, sleeps) as graph:
        token = await graph.exchange_code(CODE)
        await graph.phone_number(PNID, token)
        with pytest.raises(GraphError) as raised:
            await graph.subscribe_app(WABA, token)
        errors.append(raised.value)
        with pytest.raises(GraphError) as raised:
            await graph.exchange_code(CODE)  # used: the error comes back for the URL holding the secret
        errors.append(raised.value)
        shown = [repr(graph), repr(token), str(token), caplog.text]
    shown += [text for error in errors for text in (str(error), repr(error), str(error.args))]
    assert "HTTP Request: GET" in caplog.text  # httpx logged the exchange's URL, masked
    assert sleeps.delays and "retrying" in caplog.text
    for secret in (APP_SECRET, CODE, TOKEN):
        assert not [text for text in shown if secret in text], secret
    assert "Malformed access token ***" in errors[0].message


async def test_the_default_fake_exchanges_its_default_code() -> None:
    with FakeGraph() as fake:
        async with client(fake.url, Sleeps(), meta_app_id="any", app_secret=SecretStr("any-secret")) as graph:
            token = await graph.exchange_code(DEFAULT_CODE)
            await graph.subscribe_app(WABA, token)
    assert token.get_secret_value() == DEFAULT_TOKEN
    assert fake.subscribed == [WABA]

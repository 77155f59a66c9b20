"""The HTTP layer of the ingest with an in-memory publisher: codes, headers, what reaches Kafka.

The real-broker versions of these paths are in tests/integration/test_ingest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest

from ingest.app import create_app
from ingest.errors import KafkaUnavailable
from ingest.signature import sign
from ingest.state import InsecureConfig
from runtime.settings import Settings
from schemas.routing import ChangeRecord

SECRET = "test-secret"


class MemoryPublisher:
    def __init__(self) -> None:
        self.published: list[list[ChangeRecord]] = []
        self.down = False
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def ready(self) -> bool:
        return not self.down

    async def publish(self, records: Sequence[ChangeRecord]) -> None:
        if self.down:
            raise KafkaUnavailable("down", 7)
        self.published.append(list(records))


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "app_secret": SECRET,
        "verify_token": "tok",
        "topic_prefix": "u.",
        "max_body_bytes": 4096,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


def envelope(*fields: str) -> bytes:
    changes = [{"field": f, "value": {"metadata": {"phone_number_id": "15550001"}}} for f in fields]
    entry = {"id": "waba1", "time": 1, "changes": changes}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture(params=["fast-path", "fastapi-route"])
async def client(publisher: MemoryPublisher, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Both ways POST /webhook is served: the raw ASGI fast path, and (under a root path, as when
    mounted) the FastAPI route."""
    app = create_app(settings(), publisher)
    root = "" if request.param == "fast-path" else "/ingest"
    async with app.router.lifespan_context(app):
        assert publisher.started
        transport = httpx.ASGITransport(app=app, root_path=root)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://ingest{root}") as c:
            yield c
    assert publisher.stopped


def signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(SECRET.encode(), body), "Content-Type": "application/json"}


async def test_accepted_delivery(client: httpx.AsyncClient, publisher: MemoryPublisher) -> None:
    body = envelope("messages", "history", "something_new")
    r = await client.post("/webhook", content=body, headers=signed(body))
    assert r.status_code == 200
    assert r.json() == {"ok": True, "records": 3}
    assert len(r.headers["x-coex-delivery"]) == 32
    [records] = publisher.published
    assert [rec.field for rec in records] == ["messages", "history", "something_new"]
    assert all(rec.key == b"15550001" for rec in records)
    metrics = (await client.get("/metrics")).text
    assert 'coex_ingest_requests_total{code="200",method="POST"} 1.0' in metrics
    assert 'coex_ingest_records_total{topic="u.unknown"} 1.0' in metrics
    assert "coex_ingest_kafka_up 1.0" in metrics


async def test_a_lone_surrogate_escape_is_accepted_not_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    # Half an emoji: valid JSON syntax that orjson refuses; a 400 would have the platform retry it
    # until it gives up, and the message would be lost.
    body = envelope("messages").replace(b'"phone_number_id"', b'"note":"\\ud83d","phone_number_id"', 1)
    assert b'"\\ud83d"' in body
    r = await client.post("/webhook", content=body, headers=signed(body))
    assert r.status_code == 200
    [[record]] = publisher.published
    assert body in record.value


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (envelope("messages"), {}, 401),
        (envelope("messages"), {"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
        (b"not json", None, 400),
        (b'{"entry": "nope"}', None, 400),
        (b"[]", None, 400),
        (b"x" * 5000, None, 413),
    ],
)
async def test_refused_deliveries_reach_nothing(
    client: httpx.AsyncClient,
    publisher: MemoryPublisher,
    body: bytes,
    headers: dict[str, str] | None,
    code: int,
) -> None:
    r = await client.post("/webhook", content=body, headers=signed(body) if headers is None else headers)
    assert r.status_code == code
    assert r.json()["ok"] is False
    assert publisher.published == []


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient, publisher: MemoryPublisher) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    r = await client.post("/webhook", content=chunks(), headers={"X-Hub-Signature-256": "sha256=00"})
    assert r.status_code == 413
    assert publisher.published == []


async def test_kafka_down_is_503_with_retry_after(client: httpx.AsyncClient, publisher: MemoryPublisher) -> None:
    publisher.down = True
    body = envelope("messages")
    r = await client.post("/webhook", content=body, headers=signed(body))
    assert (r.status_code, r.headers["retry-after"]) == (503, "7")
    assert (await client.get("/readyz")).status_code == 503
    publisher.down = False
    assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_handshake(client: httpx.AsyncClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "42"}
    ok = await client.get("/webhook", params=params)
    assert (ok.status_code, ok.text, ok.headers["content-type"].split(";")[0]) == (200, "42", "text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "bad", "hub.challenge": "42"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "42"},
        {"hub.challenge": "42"},
    ):
        assert (await client.get("/webhook", params=params)).status_code == 403


async def test_handshake_without_a_configured_token_is_403(publisher: MemoryPublisher) -> None:
    app = create_app(settings(verify_token=None), publisher)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as c:
        r = await c.get("/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})
    assert r.status_code == 403


def test_no_secret_refuses_to_start(publisher: MemoryPublisher) -> None:
    with pytest.raises(InsecureConfig):
        create_app(settings(app_secret=None), publisher)


async def test_insecure_mode_skips_the_check_and_warns(
    publisher: MemoryPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings(app_secret=None, insecure_skip_signature=True), publisher)
    assert "NOT checked" in caplog.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as c:
        r = await c.post("/webhook", content=envelope("messages"))
    assert r.status_code == 200


def test_openapi_describes_post_webhook(publisher: MemoryPublisher) -> None:
    schema = create_app(settings(), publisher).openapi()
    post = schema["paths"]["/webhook"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert (body["type"], body["required"]) == ("object", ["entry"])
    assert set(post["responses"]) == {"200", "400", "401", "413", "503"}
    assert set(schema["paths"]["/webhook"]["get"]["responses"]) >= {"200", "403"}

"""The ingest against the real broker: what is accepted is on its topic, what is refused is nowhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runtime.settings import Settings
from schemas.routing import decode_record
from tests.integration.ingest_kit import (
    SECRET,
    VERIFY_TOKEN,
    change,
    envelope,
    ingest_client,
    ingest_settings,
    read_topics,
    records_written,
    signed,
)
from topics.catalog import ensure_topics, onboarding_topics, topic_names


@pytest.fixture
async def settings(kafka_bootstrap: str, unique: Callable[[str], str]) -> AsyncIterator[Settings]:
    s = ingest_settings(kafka_bootstrap, unique("it-ingest-") + ".", max_body_bytes=64 * 1024)
    assert sorted(await ensure_topics(s)) == sorted([*topic_names(s), *onboarding_topics(s)])
    yield s


async def test_ensure_topics_is_idempotent_and_configures_topics(kafka_bootstrap: str, settings: Settings) -> None:
    assert await ensure_topics(settings) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        # A topic just created may be described before its partitions are: ask until they are.
        for _ in range(50):
            described = await admin.describe_topics([settings.topic("history")])
            if described[0]["partitions"]:
                break
            await asyncio.sleep(0.2)
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic("normalized_messages"))]
        )
    finally:
        await admin.close()
    assert len(described[0]["partitions"]) == settings.topic_partitions
    configs = {name: value for name, value, *_ in response.resources[0][4]}
    assert configs["max.message.bytes"] == "33554432"
    assert configs["retention.ms"] == str(settings.topic_retention_ms)
    assert configs["compression.type"] == "producer"


async def test_every_accepted_change_is_on_its_topic_with_key_and_wrapper(
    kafka_bootstrap: str, settings: Settings
) -> None:
    deliveries = [
        envelope(("waba1", [change("messages", "111", messages=[{"id": "wamid.1", "type": "text"}])])),
        envelope(
            ("waba1", [change("history", "111", history=[]), change("smb_message_echoes", "111", message_echoes=[])]),
            ("waba2", [change("smb_app_state_sync", "222", state_sync=[])]),
        ),
        envelope(("waba3", [change("account_update", None, event="PARTNER_REMOVED")])),
        envelope(("waba1", [change("brand_new_field", "111", anything=1)])),
    ]
    sent: dict[str, bytes] = {}
    async with ingest_client(settings) as client:
        for body in deliveries:
            r = await client.post("/webhook", content=body, headers=signed(body))
            assert r.status_code == 200, r.text
            sent[r.headers["x-coex-delivery"]] = body
    records = await read_topics(kafka_bootstrap, settings, expected=6)
    assert len(records) == 6
    got = sorted(
        (decode_record(r.value).delivery_id, decode_record(r.value).change_index, r.topic, r.key) for r in records
    )
    ids = list(sent)
    assert got == sorted(
        [
            (ids[0], 0, settings.topic("messages"), b"111"),
            (ids[1], 0, settings.topic("history"), b"111"),
            (ids[1], 1, settings.topic("smb_message_echoes"), b"111"),
            (ids[1], 2, settings.topic("smb_app_state_sync"), b"222"),
            (ids[2], 0, settings.topic("account_update"), b"waba3"),
            (ids[3], 0, settings.topic("unknown"), b"111"),
        ]
    )
    for record in records:
        wrapped = decode_record(record.value)
        original = orjson.loads(sent[wrapped.delivery_id])
        changes = [(e["id"], e["time"], c) for e in original["entry"] for c in e["changes"]]
        waba, entry_time, original_change = changes[wrapped.change_index]
        assert (wrapped.waba_id, wrapped.entry_time) == (waba, entry_time)
        assert {"field": wrapped.field, "value": wrapped.value} == original_change
        assert wrapped.received_at > 1.7e9


async def test_a_16_mb_history_change_fits(kafka_bootstrap: str, settings: Settings) -> None:
    big = settings.model_copy(update={"max_body_bytes": 32 * 1024 * 1024})
    messages = [{"id": f"wamid.{i:08d}", "type": "text", "text": {"body": "y" * 180}} for i in range(75_000)]
    body = envelope(("waba1", [change("history", "111", history=[{"threads": [{"id": "1", "messages": messages}]}])]))
    assert len(body) > 16 * 1024 * 1024
    async with ingest_client(big) as client:
        r = await client.post("/webhook", content=body, headers=signed(body))
    assert (r.status_code, r.json()) == (200, {"ok": True, "records": 1})
    [record] = await read_topics(kafka_bootstrap, big, expected=1, within_s=60)
    assert decode_record(record.value).value["history"][0]["threads"][0]["messages"][-1]["id"] == "wamid.00074999"


async def test_refused_deliveries_get_their_code_and_write_nothing(kafka_bootstrap: str, settings: Settings) -> None:
    good = envelope(("waba1", [change("messages", "111", messages=[])]))
    oversized = envelope(("waba1", [change("messages", "111", pad="z" * 70_000)]))

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    cases = [
        ("missing signature", good, {"Content-Type": "application/json"}, 401),
        ("wrong signature", good, signed(good, "not-the-secret"), 401),
        ("signature of other bytes", good + b" ", signed(good), 401),
        ("not JSON", b"{nope", signed(b"{nope"), 400),
        ("JSON, not an envelope", b'{"entry": {}}', signed(b'{"entry": {}}'), 400),
        ("change without field", b'{"entry":[{"id":"1","changes":[{}]}]}', None, 400),
        ("too large", oversized, signed(oversized), 413),
    ]
    async with ingest_client(settings) as client:
        for name, body, headers, code in cases:
            r = await client.post("/webhook", content=body, headers=headers or signed(body))
            assert r.status_code == code, name
            assert r.json()["ok"] is False, name
        r = await client.post("/webhook", content=chunked(), headers={"X-Hub-Signature-256": "sha256=00"})
        assert r.status_code == 413, "chunked too large"
        metrics = (await client.get("/metrics")).text
    assert 'coex_ingest_requests_total{code="413",method="POST"} 2.0' in metrics
    assert await records_written(kafka_bootstrap, settings) == 0


async def test_a_lying_content_length_is_counted_not_trusted(kafka_bootstrap: str, settings: Settings) -> None:
    """Raw ASGI: the header says 10 bytes, 100 KB arrive; reading stops at the limit."""
    from ingest.app import create_app

    app = create_app(settings)
    body_parts = [b"{" + b" " * 1024] * 100
    sent: list[dict[str, object]] = []
    received = 0

    async def receive() -> dict[str, object]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": body_parts[received - 1], "more_body": received < len(body_parts)}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhook",
        "headers": [(b"content-length", b"10"), (b"x-hub-signature-256", b"sha256=00")],
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 413
    assert received < len(body_parts)
    assert await records_written(kafka_bootstrap, settings) == 0


async def test_handshake(settings: Settings) -> None:
    async with ingest_client(settings) as client:
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        ok = await client.get("/webhook", params=params)
        assert (ok.status_code, ok.text) == (200, "1158201444")
        assert ok.headers["content-type"].startswith("text/plain")
        for params in (
            {"hub.mode": "subscribe", "hub.verify_token": SECRET, "hub.challenge": "1"},
            {"hub.mode": "other", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
            {},
        ):
            assert (await client.get("/webhook", params=params)).status_code == 403


async def test_ready_when_kafka_answers(settings: Settings) -> None:
    async with ingest_client(settings) as client:
        assert (await client.get("/healthz")).json() == {"ok": True}
        assert (await client.get("/readyz")).status_code == 200
        assert "coex_ingest_kafka_up 1.0" in (await client.get("/metrics")).text


async def test_kafka_unreachable_at_start_is_503_not_a_crash(unique: Callable[[str], str]) -> None:
    nobody = ingest_settings("127.0.0.1:1", unique("it-nokafka-") + ".", kafka_send_timeout_s=1.0)
    body = envelope(("waba1", [change("messages", "111")]))
    async with ingest_client(nobody) as client:
        r = await client.post("/webhook", content=body, headers=signed(body))
        assert r.status_code == 503
        assert "retry-after" in r.headers
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200


async def test_ensure_topics_says_when_the_topics_have_another_partition_count(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(50):  # the fixture's topics, once their partitions are described
        caplog.clear()
        assert await ensure_topics(settings.model_copy(update={"topic_partitions": settings.topic_partitions})) == []
        assert "keep the partitions they have" not in caplog.text
        other = settings.model_copy(update={"topic_partitions": settings.topic_partitions + 2})
        assert await ensure_topics(other) == []
        if settings.topic("history") in caplog.text:
            break
        await asyncio.sleep(0.2)
    assert f"{settings.topic('history')} ({settings.topic_partitions})" in caplog.text
    assert f"not COEX_TOPIC_PARTITIONS={settings.topic_partitions + 2}" in caplog.text

"""Helpers shared by the ingest's integration tests: settings, payloads, reading topics back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from coex.settings import Settings
from ingest.app import create_app
from ingest.signature import sign
from ingest.topics import topic_names

SECRET = "integration-secret"
VERIFY_TOKEN = "verify-me"


def ingest_settings(bootstrap: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": prefix,
        "app_secret": SECRET,
        "verify_token": VERIFY_TOKEN,
        "topic_partitions": 3,
        "kafka_send_timeout_s": 5.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret.encode(), body), "Content-Type": "application/json"}


def change(field: str, phone_number_id: str | None, **value: Any) -> dict[str, Any]:
    if phone_number_id is not None:
        value["metadata"] = {"display_phone_number": "15550783881", "phone_number_id": phone_number_id}
    return {"field": field, "value": {"messaging_product": "whatsapp", **value}}


def envelope(*entries: tuple[str, list[dict[str, Any]]]) -> bytes:
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba, "time": 1739321024, "changes": changes} for waba, changes in entries],
        }
    )


@asynccontextmanager
async def ingest_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real Kafka publisher started, behind an in-process HTTP client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest", timeout=30) as client:
            yield client


async def read_topics(
    bootstrap: str, settings: Settings, expected: int, within_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the settings' topics, waiting until `expected` of them arrived."""
    consumer = AIOKafkaConsumer(
        *topic_names(settings),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(within_s):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                records.extend(r for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    return records


async def records_written(bootstrap: str, settings: Settings) -> int:
    """How many records the settings' topics hold (end offsets; nothing is ever deleted here)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topic_names(settings) for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())

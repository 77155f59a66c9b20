"""Helpers shared by the ingest's integration tests: settings, payloads, reading topics back, `coex ingest`
as a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ingest.app import create_app
from ingest.signature import sign
from runtime.settings import Settings
from tests.integration.broker_kit import ROOT, free_port
from topics.catalog import topic_names

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


class IngestProcess:
    """`coex ingest` as a process of the test's own, to kill with SIGKILL and start again on its port."""

    def __init__(self, bootstrap: str, prefix: str, log: Path, partitions: int = 3, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
        self.env.update(
            COEX_KAFKA_BOOTSTRAP=bootstrap,
            COEX_TOPIC_PREFIX=prefix,
            COEX_TOPIC_PARTITIONS=str(partitions),
            COEX_APP_SECRET=SECRET,
            COEX_INGEST_HOST="127.0.0.1",
            COEX_INGEST_PORT=str(self.port),
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coex.cli", "ingest"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within_s: float = 60.0) -> None:
        """Until /readyz answers 200 (Kafka reached, topics there)."""
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while True:
                assert self.proc is not None and self.proc.poll() is None, f"coex ingest exited; see {self.log}"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                assert time.monotonic() < deadline, f"coex ingest not ready within {within_s} s; see {self.log}"
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

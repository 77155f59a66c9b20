"""A broker outage: the ingest answers 503 while Kafka is away and 200 again once it is back,
without a restart. Uses a throwaway broker of its own, never the session's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.broker_kit import ROOT, Broker, free_port_pair
from tests.integration.ingest_kit import (
    SECRET,
    change,
    envelope,
    ingest_client,
    ingest_settings,
    records_written,
    signed,
)
from topics.catalog import ensure_topics


async def post_until(client, body: bytes, code: int, within_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while True:
        r = await client.post("/webhook", content=body, headers=signed(body))
        if r.status_code == code:
            return time.monotonic() - started
        assert time.monotonic() - started < within_s, f"still {r.status_code} after {within_s} s: {r.text}"
        await asyncio.sleep(0.5)


@pytest.mark.timeout(400)
async def test_503_while_the_broker_is_down_then_recovers_by_itself(
    broker: Broker, unique: Callable[[str], str]
) -> None:
    settings = ingest_settings(broker.bootstrap, unique("it-outage-") + ".", kafka_send_timeout_s=3.0)
    await ensure_topics(settings)
    body = envelope(("waba1", [change("messages", "111", messages=[{"id": "wamid.1"}])]))
    async with ingest_client(settings) as client:
        assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200

        broker.run("stop")
        await post_until(client, body, 503, within_s=30)
        r = await client.post("/webhook", content=body, headers=signed(body))
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) > 0
        assert (await client.get("/readyz")).status_code == 503
        assert "coex_ingest_kafka_up 0.0" in (await client.get("/metrics")).text

        broker.run("start")
        await post_until(client, body, 200, within_s=90)
        assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert 'coex_ingest_requests_total{code="503",method="POST"}' in metrics
    assert await records_written(broker.bootstrap, settings) >= 3


@pytest.mark.timeout(400)
async def test_coex_ingest_serves_before_kafka_is_up_and_takes_webhooks_once_it_is(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    (tmp_path / "kafka").mkdir()
    broker = Broker(tmp_path / "kafka")  # not started yet
    settings = ingest_settings(broker.bootstrap, unique("it-late-") + ".")
    port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(
        COEX_KAFKA_BOOTSTRAP=broker.bootstrap,
        COEX_TOPIC_PREFIX=settings.topic_prefix,
        COEX_TOPIC_PARTITIONS=str(settings.topic_partitions),
        COEX_APP_SECRET=SECRET,
        COEX_INGEST_HOST="127.0.0.1",
        COEX_INGEST_PORT=str(port),
    )
    proc = subprocess.Popen([sys.executable, "-m", "coex.cli", "ingest"], env=env, cwd=ROOT)
    body = envelope(("waba1", [change("messages", "111", messages=[{"id": "wamid.late"}])]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "coex ingest exited without Kafka"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "coex ingest never answered /healthz without Kafka"
                await asyncio.sleep(0.2)
            assert (await client.get("/readyz")).status_code == 503
            refused = await client.post("/webhook", content=body, headers=signed(body))
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0

            broker.run("start")
            try:
                await post_until(client, body, 200, within_s=90)
                assert (await client.get("/readyz")).status_code == 200
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                assert await records_written(broker.bootstrap, settings) >= 1
            finally:
                broker.run("stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(400)
async def test_every_business_is_taken_again_after_the_broker_restarts_under_traffic(
    broker: Broker, unique: Callable[[str], str]
) -> None:
    settings = ingest_settings(broker.bootstrap, unique("it-restart-") + ".", kafka_send_timeout_s=3.0)
    await ensure_topics(settings)
    businesses = [str(1065403522 + i) for i in range(12)]  # spread over the partitions

    def body(pnid: str, n: int) -> bytes:
        return envelope(("waba1", [change("messages", pnid, messages=[{"id": f"wamid.{pnid}.{n}"}])]))

    async with ingest_client(settings) as client:
        stopping = asyncio.Event()

        async def traffic(pnid: str) -> None:
            n = 0
            while not stopping.is_set():
                payload = body(pnid, n)
                n += 1
                await client.post("/webhook", content=payload, headers=signed(payload))
                await asyncio.sleep(0.01)  # an in-process 503 never yields to the loop by itself

        senders = [asyncio.create_task(traffic(pnid)) for pnid in businesses]
        await asyncio.sleep(2)
        await asyncio.to_thread(broker.run, "stop")  # with deliveries in flight
        await asyncio.sleep(5)
        await asyncio.to_thread(broker.run, "start")
        await asyncio.sleep(5)
        stopping.set()
        await asyncio.gather(*senders)
        for pnid in businesses:
            await post_until(client, body(pnid, -1), 200, within_s=60)

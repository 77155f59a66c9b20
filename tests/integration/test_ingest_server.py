"""`coex ingest` as a real process on a real port, as the platform would reach it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from schemas.routing import decode_record
from tests.integration.broker_kit import free_port
from tests.integration.ingest_kit import SECRET, change, envelope, ingest_settings, read_topics, signed

ROOT = Path(__file__).resolve().parents[2]


def coex_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(values)
    return env


@pytest.fixture
def ingest_process(kafka_bootstrap: str, unique: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    prefix = unique("it-server-") + "."
    port = free_port()
    env = coex_env(
        COEX_KAFKA_BOOTSTRAP=kafka_bootstrap,
        COEX_TOPIC_PREFIX=prefix,
        COEX_APP_SECRET=SECRET,
        COEX_TOPIC_PARTITIONS="3",
        COEX_INGEST_HOST="127.0.0.1",
        COEX_INGEST_PORT=str(port),
    )
    proc = subprocess.Popen([sys.executable, "-m", "coex.cli", "ingest"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "coex ingest exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "coex ingest never became ready"
            time.sleep(0.2)
        yield base, prefix
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # uvicorn shuts down cleanly (lifespan flushes the producer), then re-raises the signal.
    assert code in (0, -signal.SIGTERM)


async def test_coex_ingest_serves_on_a_real_port(kafka_bootstrap: str, ingest_process: tuple[str, str]) -> None:
    base, prefix = ingest_process
    body = envelope(("waba1", [change("messages", "15550001", messages=[{"id": "wamid.real"}])]))
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post("/webhook", content=body, headers=signed(body))
        assert (r.status_code, r.json()) == (200, {"ok": True, "records": 1})
        assert (await client.post("/webhook", content=body)).status_code == 401
        for page in ("/openapi.json", "/docs", "/redoc"):  # off unless COEX_INGEST_DOCS turns them on
            assert (await client.get(page)).status_code == 404
        metrics = (await client.get("/metrics")).text
    assert 'coex_ingest_requests_total{code="200",method="POST"} 1.0' in metrics
    assert f'coex_ingest_records_total{{topic="{prefix}messages"}} 1.0' in metrics
    [record] = await read_topics(kafka_bootstrap, ingest_settings(kafka_bootstrap, prefix, topic_partitions=3), 1)
    assert (record.topic, record.key) == (f"{prefix}messages", b"15550001")
    assert decode_record(record.value).delivery_id == r.headers["x-coex-delivery"]


def test_coex_ingest_refuses_to_start_without_a_secret() -> None:
    env = coex_env(COEX_KAFKA_BOOTSTRAP="127.0.0.1:1", COEX_INGEST_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-m", "coex.cli", "ingest"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "COEX_APP_SECRET is not set" in done.stderr

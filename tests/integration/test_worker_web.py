"""A worker's web port serves operators (`/metrics`, `/healthz`) and nothing of its tables.

faust serves its tables (`/table/<name>/<key>/`), its routing (`/router/`), statistics and a
service graph by default: a held history chunk, customer message text included, was one GET away.
A real `coex worker` holds such a chunk here, and every one of those pages must answer 404.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from tests.integration.test_streams import WAIT_S, Cluster
from tests.unit.streams.test_processor import PNID, build_scenario, records

# faust's own pages, by the blueprint that served them; {held} is a held chunk's key.
FAUST_PAGES = (
    "/table/",
    "/table/held_chunks/",
    "/table/held_chunks/{held}/",
    f"/table/history_sync/{PNID}/",
    f"/table/reorder/{PNID}/",
    f"/table/contacts/{PNID}/",
    "/router/",
    "/router/held_chunks/",
    "/router/held_chunks/{held}/",
    "/",
    "/stats/",
    "/assignment/",
    "/graph/",
    "/performance/",
)


def _second_chunk_of_phase_0() -> bytes:
    """A history chunk that arrives before the chunk it follows: the worker holds it."""
    for body in build_scenario().bodies:
        change = orjson.loads(body)["entry"][0]["changes"][0]
        for chunk in change["value"].get("history", ()):  # media follow-ups carry none
            if (chunk["metadata"]["phase"], chunk["metadata"]["chunk_order"]) == (0, 2):
                return body
    raise AssertionError("the scenario has no chunk 0/2")


async def _produce(bootstrap: str, recs: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in recs:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _wait_until_held(base: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if "coex_stream_held_chunks 1.0" in httpx.get(f"{base}/metrics", timeout=5).text:
                return
        except httpx.TransportError:  # not listening yet
            pass
        assert all(p.poll() is None for p in cluster.procs), f"the worker exited; see {cluster.logs}"
        time.sleep(0.5)
    raise AssertionError(f"the worker never held the chunk; see {cluster.logs}")


def _listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses on which something listens on `port` (Linux's /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


async def test_the_worker_serves_metrics_and_health_and_none_of_its_tables(cluster: Cluster) -> None:
    cluster.start("w1")
    base = f"http://127.0.0.1:{cluster.web_ports['w1']}"
    cluster.engine()  # the worker created the topics and owns the engine
    await _produce(cluster.bootstrap, records([_second_chunk_of_phase_0()], cluster.prefix))
    await asyncio.to_thread(_wait_until_held, base, cluster)

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        held = f"{PNID}|0|2"
        for page in FAUST_PAGES:
            answer = await client.get(page.format(held=held))
            assert answer.status_code == 404, (page, answer.status_code, answer.text[:300])
            assert "hello 0/2" not in answer.text  # the held chunk's message text
    # Loopback only unless COEX_WORKER_WEB_BIND says otherwise (containers set 0.0.0.0).
    assert _listening_addresses(cluster.web_ports["w1"]) == {"127.0.0.1"}

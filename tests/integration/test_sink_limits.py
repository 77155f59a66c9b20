"""Valid webhooks whose dates span more months than ClickHouse takes in one insert block (100) land,
and the businesses after them too: `coex worker` processes, the real broker and embedded engine."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.integration.soak import soak
from tests.integration.test_streams import WAIT_S, Cluster, _produce
from tests.unit.streams.test_processor import records

PNID = "106540352242922"
OTHER_PNID = "106540352240000"
BUSINESS = "15550783881"
USER = "16505551234"


def month_stamps(first_year: int, months: int) -> list[int]:
    """The 15th of each month from January of `first_year`, as unix seconds."""
    return [int(datetime(first_year + m // 12, m % 12 + 1, 15, tzinfo=UTC).timestamp()) for m in range(months)]


def envelope(field: str, value: dict[str, Any]) -> bytes:
    entry = {"id": "102290129340398", "changes": [{"field": field, "value": value}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def metadata(pnid: str) -> dict[str, str]:
    return {"display_phone_number": BUSINESS, "phone_number_id": pnid}


def history_chunk(stamps: list[int]) -> bytes:
    messages = [
        {"from": USER, "id": f"wamid.h{i}", "timestamp": str(ts), "type": "text", "text": {"body": f"month {i}"}}
        for i, ts in enumerate(stamps)
    ]
    threads = [{"id": USER, "messages": messages}]
    chunk = {"metadata": {"phase": 0, "chunk_order": 0, "progress": 100}, "threads": threads}
    return envelope("history", {"messaging_product": "whatsapp", "metadata": metadata(PNID), "history": [chunk]})


def echo(pnid: str, mid: str, ts: int) -> bytes:
    message = {"from": BUSINESS, "to": USER, "id": mid, "timestamp": str(ts), "type": "text", "text": {"body": "hi"}}
    return envelope("smb_message_echoes", {"metadata": metadata(pnid), "message_echoes": [message]})


def wait_messages(cluster: Cluster, expected: dict[str, int]) -> dict[str, int]:
    """Messages per business under FINAL, once they are `expected` or WAIT_S has passed."""
    engine = cluster.engine()
    deadline = time.monotonic() + WAIT_S
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            rows = engine.query_rows("SELECT phone_number_id, count() FROM messages FINAL GROUP BY phone_number_id")
        except Exception:  # the tables appear with the worker's migrations
            rows = []
        counts = dict(rows)
        if counts == expected:
            return counts
        time.sleep(1.0)
    return counts


async def test_a_history_chunk_over_120_months_lands_and_the_next_business_too(cluster: Cluster) -> None:
    cluster.start("w1")
    await asyncio.to_thread(cluster.engine)  # the worker created the topics and serves the engine
    stamps = month_stamps(1990, 120)
    await _produce(cluster.bootstrap, records([history_chunk(stamps)], cluster.prefix))
    assert await asyncio.to_thread(wait_messages, cluster, {PNID: 120}) == {PNID: 120}
    engine = await asyncio.to_thread(cluster.engine)
    months = engine.query_rows("SELECT uniqExact(toYYYYMM(sent_at)) FROM messages FINAL")
    assert months == [(120,)]
    await _produce(cluster.bootstrap, records([echo(OTHER_PNID, "wamid.later", stamps[-1])], cluster.prefix))
    expected = {PNID: 120, OTHER_PNID: 1}
    assert await asyncio.to_thread(wait_messages, cluster, expected) == expected
    assert engine.query_rows("SELECT count() FROM dead_letters") == [(0,)]


@soak  # the block limit is also held by the 120-month chunk and tests/unit/sinks/test_blocks.py
async def test_110_one_message_webhooks_over_110_months_sent_while_the_worker_is_down_land(cluster: Cluster) -> None:
    first = cluster.start("w1")
    await asyncio.to_thread(cluster.wait_log, "w1", "Worker ready")  # the worker created the topics
    await asyncio.to_thread(cluster.stop, first)
    bodies = [echo(PNID, f"wamid.e{i}", ts) for i, ts in enumerate(month_stamps(2000, 110))]
    await _produce(cluster.bootstrap, records(bodies, cluster.prefix))
    cluster.start("w2")
    assert await asyncio.to_thread(wait_messages, cluster, {PNID: 110}) == {PNID: 110}

"""Whether a worker is stuck: the watchdog's decision, pure so it is tested without Kafka, and the
probe that tells a stuck worker from one whose Kafka is away.

A worker whose stream stops taking records while records wait on its partitions and ClickHouse
takes writes is stuck in its client libraries (seen on a fresh broker: nothing handled for 12
minutes, the commit waiting for changelog batches aiokafka did not send; that cause is fixed, see
`ingest.topics.track_topics`, the guard stays for the next one). Nothing is lost by leaving
(offsets commit only after their rows are written), and `coex dev`, compose or any supervisor
starts it again; staying would hold its partitions forever. An outage is not a stall: the writer
retries ClickHouse and the clients reconnect to Kafka by design, and a restart would not help, so
the time either is away does not count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaError

# A rebalance or a changelog recovery holds the stream by design: allowed this many timeouts.
IN_TRANSITION_FACTOR = 3


def stalled(*, idle_s: float, timeout_s: float, waiting: bool, sink_failing: bool, in_transition: bool) -> bool:
    """`idle_s` since a record was last handled; `timeout_s` 0 turns the watchdog off."""
    limit = timeout_s * (IN_TRANSITION_FACTOR if in_transition else 1)
    return timeout_s > 0 and waiting and not sink_failing and idle_s >= limit


def await_chain(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: `file:line function` of each coroutine it awaits, outermost first."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


async def kafka_answers(client: Any, timeout_s: float) -> bool:
    """Whether the cluster answers a metadata request through `client` (an AIOKafkaClient)."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True

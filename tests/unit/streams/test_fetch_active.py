"""A fetch waiting while a rebalance pauses every partition takes no partition's records.

faust's own consumer and aiokafka's own `Fetcher.fetched_records`, over a fetch buffer holding the
records of a changelog partition recovery has just sought to its start (no broker needed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from faust.types import TP

from streams.patches import fetch_only_active

CHANGELOG = TP("g-reorder-changelog", 0)  # paused: recovery resumes it after its seek
STREAM = TP("history", 0)  # active when the fetch began


class Position:
    """aiokafka's fetch state of one partition, as a buffered fetch result reads and moves it."""

    paused = False
    position = 0

    def consumed_to(self, position: int) -> None:
        self.position = position


class Fetched:
    """aiokafka's records of one partition from one fetch response, from the current position on."""

    def __init__(self, first: int, count: int) -> None:
        self.next_fetch_offset = first
        self._offsets = range(first, first + count)

    def __iter__(self) -> Any:
        for offset in self._offsets:
            self.next_fetch_offset = offset + 1
            yield SimpleNamespace(offset=offset)


def consumer_over(position: Position, *, fix: bool) -> Any:
    """faust's consumer, fetching from a buffer that holds CHANGELOG's offsets 0-2; the rebalance
    pauses STREAM while the fetch waits."""
    app = faust.App(f"fetch-active-{fix}", broker="kafka://127.0.0.1:1", store="memory://")
    consumer: Any = app.consumer
    assignment = SimpleNamespace(active=True, state_value=lambda tp: position)
    buffer = SimpleNamespace(
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda tp: True),
        _records={CHANGELOG: FetchResult(CHANGELOG, assignment=assignment, partition_records=Fetched(0, 3), backoff=0)},
        _notify=lambda waiter: None,
        _wait_consume_future=None,
    )

    async def getmany(active_partitions: Any, timeout: float) -> Any:
        consumer.pause_partitions({STREAM})  # the rebalance, while the fetch waits
        return await Fetcher.fetched_records(buffer, active_partitions, timeout=0)

    consumer._thread = SimpleNamespace(getmany=getmany)
    consumer._set_active_tps({STREAM})
    consumer.pause_partitions({CHANGELOG})
    if fix:
        fetch_only_active(app)
    return consumer


def test_a_fetch_waiting_when_every_partition_is_paused_leaves_their_records_in_place() -> None:
    async def go() -> None:
        position = Position()
        consumer = consumer_over(position, fix=True)
        records, _ = await consumer._wait_next_records(1.0)
        assert records == {} and position.position == 0
        consumer.resume_partitions({CHANGELOG})  # recovery starts reading
        consumer.resume_partitions({STREAM})
        records, _ = await consumer._wait_next_records(1.0)
        assert [r.offset for r in records[CHANGELOG]] == [0, 1, 2]
        assert position.position == 3

    asyncio.run(go())


def test_without_it_faust_takes_the_records_of_paused_partitions_and_drops_them() -> None:
    async def go() -> None:
        position = Position()
        consumer = consumer_over(position, fix=False)
        records, active = await consumer._wait_next_records(1.0)
        assert CHANGELOG in records and CHANGELOG not in active  # faust's getmany drops them
        assert position.position == 3  # and the next fetch starts past them

    asyncio.run(go())


def test_installed_once() -> None:
    consumer = consumer_over(Position(), fix=True)
    installed = consumer._getmany
    fetch_only_active(consumer.app)
    assert consumer._getmany is installed

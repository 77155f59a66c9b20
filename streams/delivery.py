"""How fetched records reach the agent: four changes to faust's hand-over.

1. No per-record race when nothing can wait.

faust's fetch loop hands each record over with `consumer.wait_first(deliver(record),
suspend_flow.wait())`: four tasks and an asyncio.wait per record, so that a hand-over blocked on a
full queue, paused flow or a full producer buffer is dropped when a rebalance suspends the flow.
In a history import most records are one-message media follow-ups, and that race was a tenth of
the worker's main thread. When the flow runs, the producer buffer is under its limit, the
conductor is unlocked and the agent's queue has room, the hand-over completes before any other
task runs: there is nothing to race, and the record is handed over directly. A full queue is
waited out (until half of it is free, or the flow stops) and the record then goes directly too.
Otherwise faust's race runs as before.

The queue is bounded by the bytes of the records in it as well as by their number: a media
follow-up is a few hundred bytes and a history chunk MBs. With 256 events at most, a run of
follow-ups was a few milliseconds of work, less than aiokafka takes to bring the next fetch (it asks
again only once faust took every record of the last one), and the agent waited for it; thousands of
small events now queue while the bytes stay bounded as before.

2. A full queue holds the fetch loop back instead of idling it. faust takes a partition whose
agent queue is nearly full out of the partitions its fetch loop asks for, and puts it back once
the queue is down to 40%; but a fetch already waiting for the other partitions' records waits its
whole second (faust's fetch loop asks with a 1 s timeout) while the agent empties its queue: a
history import stalled ~1 s every few thousand records. One agent reads every partition here, so
all share its queue: a partition left in the fetch gets its records handed over as the queue makes
room (faust's hand-over awaits a full queue), which bounds memory the same way.

3. Records only of the partitions active when they are taken. faust hands aiokafka the very set of
active partitions that its rebalances and recovery pause and resume, and aiokafka reads an empty
collection as "every partition". A fetch still waiting when a rebalance had paused everything took
the records of every partition, moving their fetch positions past them, and faust dropped them. A
changelog partition that recovery had just sought to its start lost its records so, and recovery
waited for them for good ("No event received for active tp ... since recovery start"); a standby
lost some unnoticed (so could a changelog longer than one fetch: recovery counts only the last
offset it read). Now those records stay in aiokafka's buffer until their partition is active.

4. Fetches that wait for data. aiokafka asks the broker for at least 1 byte (faust sets no other
minimum), so a worker that keeps up with its partitions fetches each produce batch on its own as it
lands: during an import the broker's CPU doubled, its answers to the ingest slowed, and POSTs with
them (bench/RESULTS.md). A fetch now asks for `FETCH_MIN_BYTES` and waits `FETCH_MAX_WAIT_MS` at
most for them: a live message is at most that much later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

# How often a hand-over waiting for room in the agent's queue looks again (the agent takes a few
# records per millisecond; a rebalance that suspends the flow ends the wait at the next look).
ROOM_POLL_S = 0.005
# The agent's queue: this many events at most (faust's stream_buffer_maxsize) ...
QUEUE_EVENTS = 4096
# ... and no further record once the values queued weigh this much (one record always fits).
QUEUE_BYTES = 64 * 1024 * 1024
FETCH_MIN_BYTES = 1024 * 1024
FETCH_MAX_WAIT_MS = 200  # faust's is 1,500 with aiokafka's minimum of one byte


def deliver_without_race(app: Any, queue: Any) -> None:
    """Install the direct hand-over on `app`'s consumer (once); `queue` is the agent's."""
    weight = weigh(queue, QUEUE_BYTES)
    consumer: Any = app.consumer
    if getattr(consumer, "_coex_direct_delivery", False):
        return
    race = consumer.wait_first
    suspended, stopped, crashed = consumer.suspend_flow.is_set, consumer._stopped.is_set, consumer._crashed.is_set
    flow_active = app.flow_control.is_active
    buffer = app.producer.buffer
    conductor_lock = app.topics._tp_to_callback_lock

    def flowing() -> bool:
        return (
            not (suspended() or stopped() or crashed())
            and flow_active()
            and buffer.size <= buffer.max_messages
            and not conductor_lock.locked()
        )

    async def wait_first(*coros: Any, timeout: Any = None) -> Any:
        if len(coros) == 2 and timeout is None and getattr(coros[1], "__qualname__", "") == "Event.wait":
            if queue.full():
                # Wait for the agent to take half the queue, then hand the next records over
                # directly: one short sleep per hundred records instead of a race per record.
                while (queue.qsize() > queue.maxsize // 2 or weight.over(half=True)) and flowing():
                    await asyncio.sleep(ROOM_POLL_S)
            if flowing() and not queue.full():
                coros[1].close()
                await coros[0]
                return None  # faust's fetch loop ignores what wait_first returns
        return await race(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._coex_direct_delivery = True


class QueueWeight:
    """The bytes of the record values in a queue, counted as its items go in and out."""

    __slots__ = ("_items", "bytes", "limit")

    def __init__(self, items: Collection[Any], limit: int) -> None:
        self.bytes = 0
        self.limit = limit
        self._items = items

    def over(self, *, half: bool = False) -> bool:
        if not self._items:
            self.bytes = 0  # faust clears the queue on a rebalance without taking its items
            return False
        return self.bytes >= (self.limit // 2 if half else self.limit)


def weigh(queue: Any, limit: int) -> QueueWeight:
    """Make `queue` full at `limit` bytes of record values too (once); returns its weight.

    Every put and get of an asyncio queue, faust's included, goes through `_put` and `_get`, and
    every wait for room through `full`."""
    existing: QueueWeight | None = getattr(queue, "_coex_weight", None)
    if existing is not None:
        return existing
    weight = QueueWeight(queue._queue, limit)
    put, get, full_by_count = queue._put, queue._get, queue.full

    def weighed_put(item: Any) -> None:
        weight.bytes += _size(item)
        put(item)

    def weighed_get() -> Any:
        item = get()
        weight.bytes -= _size(item)
        return item

    def full() -> bool:
        return bool(full_by_count()) or weight.over()

    queue._put, queue._get, queue.full = weighed_put, weighed_get, full
    queue._coex_weight = weight
    return weight


def _size(event: Any) -> int:
    value = getattr(getattr(event, "message", None), "value", None)
    return len(value) if isinstance(value, bytes | bytearray | memoryview) else 0


def fetch_while_full(app: Any) -> None:
    """Keep partitions in the fetch when the agent's queue is full (see 2. above)."""
    consumer: Any = app.consumer
    # faust's conductor looks the method up when it builds a partition's handler, at assignment.
    consumer.on_buffer_full = _stay_in_fetch


def _stay_in_fetch(tp: Any) -> None:
    return None


def fetch_in_batches(app: Any) -> None:
    """Make the fetches of `app`'s started consumer wait for `FETCH_MIN_BYTES` (see 4. above)."""
    fetcher: Any = app.consumer._thread._ensure_consumer()._fetcher  # aiokafka reads these per request
    fetcher._fetch_min_bytes = FETCH_MIN_BYTES
    fetcher._fetch_max_wait_ms = FETCH_MAX_WAIT_MS


def fetch_only_active(app: Any) -> None:
    """Install `ActiveNow` between faust's fetch loop and aiokafka on `app`'s consumer (once)."""
    consumer: Any = app.consumer
    if getattr(consumer, "_coex_fetch_only_active", False):
        return
    getmany = consumer._getmany

    async def fetch(active_partitions: Any, timeout: float) -> Any:
        # None: a client-only app, which reads every partition
        partitions = None if active_partitions is None else ActiveNow(active_partitions)
        return await getmany(active_partitions=partitions, timeout=timeout)

    consumer._getmany = fetch
    consumer._coex_fetch_only_active = True


class ActiveNow:
    """faust's live set of active partitions as aiokafka's `fetched_records` asks it, which it
    does while the fetch waits: empty, it is still a filter that lets no partition through."""

    __slots__ = ("partitions",)

    def __init__(self, partitions: Collection[Any]) -> None:
        self.partitions = partitions

    def __contains__(self, tp: object) -> bool:
        return tp in self.partitions

    def __bool__(self) -> bool:
        return True

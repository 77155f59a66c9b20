"""Every use of a private attribute of faust, mode and aiokafka, and every change to their objects.

pyproject.toml pins the versions these were written and tested against (`PINNED`); the worker calls
`check_patch_targets()` before anything else and refuses to run when one of `TARGETS` is missing,
and tests/unit/streams/test_patches.py fails when an upgrade removes one. Why each one exists is said where
it is installed; streams/delivery.py explains the hand-over changes at length.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport.conductor import Conductor
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Producer

from streams import metrics
from streams.delivery import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, QUEUE_BYTES, ROOM_POLL_S, ActiveNow, QueueWeight

PINNED = "faust-streaming==0.15.3, mode-streaming==0.7.1, aiokafka==0.14.0"


@dataclass(frozen=True)
class Target:
    """An attribute of a library class that a patch below reads, replaces or overrides."""

    owner: type
    attribute: str

    @property
    def name(self) -> str:
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.attribute}"


TARGETS: tuple[Target, ...] = (
    Target(Consumer, "ack"),  # refuse_stale_acks
    Target(Consumer, "perform_seek"),  # seek_before_fetching
    Target(Consumer, "seek_to_committed"),
    Target(Consumer, "_read_offset"),
    Target(Consumer, "_committed_offset"),  # seek_before_fetching, committed_offset
    Target(Consumer, "wait_first"),  # deliver_without_race
    Target(Consumer, "_drain_messages"),  # the fetch loop whose wait_first it replaces
    Target(Consumer, "suspend_flow"),
    Target(Consumer, "_stopped"),
    Target(Consumer, "_crashed"),
    Target(Consumer, "on_buffer_full"),  # fetch_while_full
    Target(Consumer, "_getmany"),  # fetch_only_active
    Target(Consumer, "_thread"),  # aiokafka_consumer, fetch_in_batches
    Target(AIOKafkaConsumerThread, "_consumer"),
    Target(AIOKafkaConsumerThread, "_ensure_consumer"),
    Target(AIOKafkaConsumer, "_fetcher"),
    Target(Fetcher, "_fetch_min_bytes"),
    Target(Fetcher, "_fetch_max_wait_ms"),
    Target(AIOKafkaConsumer, "_coordinator"),  # group_settled
    Target(GroupCoordinator, "_subscription"),
    Target(GroupCoordinator, "coordinator_id"),
    Target(GroupCoordinator, "need_rejoin"),
    Target(Conductor, "_tp_to_callback_lock"),  # deliver_without_race
    Target(Producer, "_ensure_producer"),  # producer
    Target(Producer, "buffer"),
    Target(asyncio.Queue, "_put"),  # weigh
    Target(asyncio.Queue, "_get"),
    Target(asyncio.Queue, "_queue"),
    Target(faust.App, "on_rebalance_end"),  # seek_before_fetching
    Target(faust.Worker, "_setup_logging"),  # PatchedWorker
    Target(faust.Worker, "_schedule_shutdown"),
    Target(faust.Worker, "_signal_stop_time"),
)


class PatchTargetMissing(RuntimeError):
    """The installed faust, mode or aiokafka lacks an attribute a patch relies on."""


def has_attribute(owner: type, attribute: str) -> bool:
    """Whether `owner` has `attribute`: on the class, annotated, or set by one of its methods."""
    if hasattr(owner, attribute):
        return True
    for cls in owner.__mro__:
        if attribute in getattr(cls, "__annotations__", {}):
            return True
        for member in vars(cls).values():
            code = getattr(member, "__code__", None)
            if code is not None and attribute in code.co_names:
                return True
    return False


def missing_targets(targets: Iterable[Target] = TARGETS) -> list[str]:
    missing = [t.name for t in targets if not has_attribute(t.owner, t.attribute)]
    # deliver_without_race recognises the flow's wait among wait_first's coroutines by this name.
    if asyncio.Event.wait.__qualname__ != "Event.wait":
        missing.append("asyncio.Event.wait.__qualname__ == 'Event.wait'")
    return missing


def check_patch_targets(targets: Iterable[Target] = TARGETS) -> None:
    """Refuse to run on library versions whose internals the patches below do not find."""
    missing = missing_targets(targets)
    if missing:
        raise PatchTargetMissing(
            f"streams/patches.py relies on {', '.join(missing)}, missing from the installed libraries; "
            f"the worker runs only on the versions it was tested with: {PINNED}"
        )


# ---- accessors: what faust and aiokafka know and do not say publicly --------------------------------


def producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under faust's: the worker sends changelog batches and tracks topics on it."""
    started: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    return started


def aiokafka_consumer(app: faust.App) -> Any:
    """faust's aiokafka consumer; None before its thread starts it."""
    return getattr(app.consumer._thread, "_consumer", None)  # type: ignore[attr-defined]


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The offset committed for `tp` as faust last heard it (faust keeps no public accessor)."""
    offset: int | None = consumer._committed_offset.get(tp)
    return offset


def group_settled(consumer: Any) -> bool:
    """Whether `consumer` (an AIOKafkaConsumer) is a member of its group with partitions: a coordinator
    known, an assignment, no rejoin pending. Read from aiokafka's group coordinator (aiokafka has no
    public word for it); False where it has none, as before the consumer first joins."""
    coordinator = getattr(consumer, "_coordinator", None)
    subscription = getattr(getattr(coordinator, "_subscription", None), "subscription", None)
    if coordinator is None or subscription is None or coordinator.coordinator_id is None:
        return False
    return not coordinator.need_rejoin(subscription)


# ---- the consumer: commits and seeks around rebalances ---------------------------------------------


def read_before_rebalance(app: Any, message: Any) -> bool:
    """Whether a record was fetched under an older consumer generation, or while flow is paused for
    a rebalance: faust reads it again from the committed offset once the rebalance ends."""
    return bool(message.generation_id != app.consumer_generation_id or not app.flow_control.is_active())


def refuse_stale_acks(app: Any) -> None:
    """faust acks the records it skips during a rebalance (fetched under an older generation, or
    while flow is paused) and would commit past them: they would never be read again. Refuse those
    acks; after the rebalance faust seeks to the committed offsets and reads them anew (replays are
    idempotent downstream)."""
    consumer: Any = app.consumer
    if getattr(consumer, "_coex_guarded", False):
        return
    ack = consumer.ack

    def guarded_ack(message: Any) -> bool:
        if read_before_rebalance(app, message):
            metrics.REFUSED_ACKS.inc()
            return False
        return bool(ack(message))

    consumer.ack = guarded_ack
    consumer._coex_guarded = True


def seek_before_fetching(app: Any, topics: Iterable[str]) -> None:
    """Close two gaps through which a rebalance reads past records of `topics` never processed.

    1. When recovery ends, faust resumes the stream partitions, seeks them to their committed
       offsets, and only then clears the agents' queues: records fetched meanwhile are dropped
       with the fetch position already past them (the next commit may even pass them, faust
       allowing a gap of one). So our partitions stay paused from the seek until the rebalance
       ended, and are fetched from the committed offsets only.
    2. aiokafka's seek_to_committed leaves a partition without a committed offset where it was,
       past what faust skipped when the rebalance began. It starts again from the beginning,
       as `consumer_auto_offset_reset="earliest"` started it (replays are idempotent). Which
       partitions have no committed offset is the broker's answer to this very seek: faust's
       fetcher also seeks when it finds the flow stopped, while recovery runs, and that seek
       already filled `_committed_offset` in, so the seek at the end of recovery (the one that
       counts) would leave those partitions wherever the fetcher moved them meanwhile (faust
       drops what a fetch returns while the flow is stopped, a newly assigned partition's
       records among them).
    """
    consumer: Any = app.consumer
    if getattr(consumer, "_coex_seek_guarded", False):
        return
    ours = set(topics)
    held: set[Any] = set()
    rebalance_end = app.on_rebalance_end

    async def paused_perform_seek() -> None:
        tps = {tp for tp in consumer.assignment() if tp.topic in ours}
        if app.rebalancing and tps:
            consumer.pause_partitions(tps)
            held.update(tps)
        # faust's perform_seek, keeping the committed offsets the broker answered.
        committed = await consumer.seek_to_committed()
        consumer._read_offset.update(
            {tp: offset if offset is not None and offset >= 0 else None for tp, offset in committed.items()}
        )
        consumer._committed_offset.update(
            {tp: offset or None for tp, offset in committed.items() if offset is not None}
        )
        # None or 0: aiokafka seeks only to an offset above 0 (`seek_to_committed`)
        never = [tp for tp in tps if (committed.get(tp) or 0) <= 0]
        if never:
            starts = await consumer.earliest_offsets(*never)
            await consumer.seek_wait({tp: starts[tp] for tp in never})
            consumer._committed_offset.update({tp: starts[tp] for tp in never})

    def resume_after_rebalance() -> None:  # after faust cleared the queues
        assigned = consumer.assignment()
        consumer.resume_partitions({tp for tp in held if tp in assigned})
        held.clear()
        rebalance_end()

    consumer.perform_seek = paused_perform_seek
    app.on_rebalance_end = resume_after_rebalance
    consumer._coex_seek_guarded = True


# ---- the hand-over from the fetch loop to the agent (streams/delivery.py says why) ------------------


def deliver_without_race(app: Any, queue: Any) -> None:
    """Install the direct hand-over on `app`'s consumer (once); `queue` is the agent's (delivery 1.)."""
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
    """Keep partitions in the fetch when the agent's queue is full (delivery 2.)."""
    consumer: Any = app.consumer
    # faust's conductor looks the method up when it builds a partition's handler, at assignment.
    consumer.on_buffer_full = _stay_in_fetch


def _stay_in_fetch(tp: Any) -> None:
    return None


def fetch_in_batches(app: Any) -> None:
    """Make the fetches of `app`'s started consumer wait for `FETCH_MIN_BYTES` (delivery 4.)."""
    fetcher: Any = app.consumer._thread._ensure_consumer()._fetcher  # aiokafka reads these per request
    fetcher._fetch_min_bytes = FETCH_MIN_BYTES
    fetcher._fetch_max_wait_ms = FETCH_MAX_WAIT_MS


def fetch_only_active(app: Any) -> None:
    """Install `ActiveNow` between faust's fetch loop and aiokafka on `app`'s consumer (once; delivery 3.)."""
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


# ---- the worker process -------------------------------------------------------------------------


class PatchedWorker(faust.Worker):
    """faust's worker with two hooks into mode's private steps: after its logging setup (mode leaves
    the root logger at DEBUG whatever loglevel says), and on the first stop signal (to bound the stop)."""

    def after_logging_setup(self) -> None:
        """Called once mode configured logging."""

    def on_first_stop_signal(self) -> None:
        """Called on the first SIGTERM/SIGINT, after mode scheduled its shutdown."""

    def _setup_logging(self) -> None:
        super()._setup_logging()
        self.after_logging_setup()

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        first = not self._signal_stop_time
        super()._schedule_shutdown(signum)
        if first:
            self.on_first_stop_signal()

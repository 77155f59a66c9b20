"""The commit protocol: records are acked (so faust commits their offsets) only after ClickHouse
confirmed their rows, what they published to Kafka was confirmed, and their state changes were sent
to the changelogs.

The stream runs with acks off (`noack`). `stream.take()` is not used because it acks its batch in a
`finally` block, so a batch whose body was cancelled or failed (a shutdown during a ClickHouse
outage) would still be committed. Records are committed in batches: when the writer asks for a
flush (rows or age), when the records held reach `worker_batch_records` or `worker_batch_bytes`,
or soon after the agent runs out of records (streams/commit_policy.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT

from streams import metrics
from streams.changelog import send_batches
from streams.commit_policy import Held, Limits, commit_by_time, commit_due, may_commit_now
from streams.publish import PublishWindow
from streams.sink_port import Writer
from streams.table_store import TableStore


class Commits:
    """The records applied and not yet committed, and the one write to ClickHouse in flight."""

    def __init__(
        self,
        *,
        writer: Writer,
        store: TableStore,
        window: PublishWindow,
        producer: Callable[[], AIOKafkaProducer],
        limits: Limits,
        max_age_s: float,
    ) -> None:
        self.writer = writer
        self.store = store
        self.window = window
        self.producer = producer
        self.limits = limits
        self.max_age_s = max_age_s
        self.lock = asyncio.Lock()  # held while a record is applied or a commit starts
        self.uncommitted: list[EventT[bytes]] = []
        self.uncommitted_bytes = 0
        self.writing: asyncio.Future[None] | None = None
        self.oldest_uncommitted = 0.0
        self.last_commit = float("-inf")
        self.quiet_since: float | None = None  # when the agent last ran out of records to apply
        self.stream: StreamT[bytes] | None = None  # the agent's `noack` stream: acks what is committed

    def hold(self, event: EventT[bytes], size: int) -> None:
        """`event` was applied: it is acked with the next commit."""
        if not self.uncommitted:
            self.oldest_uncommitted = time.monotonic()
        self.uncommitted.append(event)
        self.uncommitted_bytes += size
        metrics.PENDING_RECORDS.set(len(self.uncommitted))

    def held(self) -> Held:
        return Held(len(self.uncommitted), self.uncommitted_bytes, self.writer.buffered_rows)

    def writing_now(self) -> bool:
        return self.writing is not None and not self.writing.done()

    def due(self) -> bool:
        due = self.writer.should_flush()
        return commit_due(self.held(), self.limits, writer_due=due, writing=self.writing_now())

    def may_commit_now(self) -> bool:
        return may_commit_now(self.held(), self.limits, writing=self.writing_now())

    async def commit(self) -> None:
        """Hand everything buffered to ClickHouse and ack its records once written.

        The write runs while the agent goes on with the next records (the engine does its work
        outside the GIL); one write at a time, so acks stay in order and memory bounded."""
        await self.wait_for_write()
        await self.window.confirm_all()
        changelog = self.store.commit()
        producer = self.producer()
        sent: list[asyncio.Future[object]] = []
        for (topic, partition), records in changelog.items():
            sent += await send_batches(producer, topic, partition, records)
        events, self.uncommitted, self.uncommitted_bytes = self.uncommitted, [], 0
        self.last_commit = time.monotonic()
        metrics.PENDING_RECORDS.set(0)
        self.writing = asyncio.ensure_future(self.write_and_ack(events, sent))

    async def wait_for_write(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing

    async def write_and_ack(self, events: list[EventT[bytes]], changelog: list[asyncio.Future[object]]) -> None:
        started = time.monotonic()
        await self.writer.flush()
        await asyncio.gather(*changelog)
        metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
        stream = self.stream
        if stream is not None:
            for event in events:
                await stream.ack(event)

    async def commit_by_time(self) -> None:
        """The timer's commit: records held long enough, or the agent quiet for a while."""
        if not self.uncommitted:
            return
        now = time.monotonic()
        if not commit_by_time(
            age_s=now - self.oldest_uncommitted,
            quiet_s=None if self.quiet_since is None else now - self.quiet_since,
            since_commit_s=now - self.last_commit,
            max_age_s=self.max_age_s,
        ):
            return
        async with self.lock:
            if self.uncommitted and self.may_commit_now():
                await self.commit()

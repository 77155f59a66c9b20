"""The faust application: topics, state tables, the one agent and its timers. Only wiring.

One agent reads every ingest topic (all keyed by phone_number_id, or the WABA id for
account_update, and co-partitioned) plus a small `stream_ticks` topic. It hands large records to
helper processes to parse as soon as it reads them (streams/helper.py), a few records ahead, and
applies the records strictly in their order: for each it calls `Processor.process`, sends what
the record released to `normalized_messages`, keeps its state changes in an overlay (TableStore)
and hands the rows to the ClickHouse writer. A commit confirms
the sends, applies the state changes to the tables, and writes the rows while the agent goes on.

Commit after write: the stream runs with acks off (`noack`), and records are acked only after
`writer.flush()` returned, which is when ClickHouse confirmed every buffered row; faust commits
only acked offsets. `stream.take()` is not used because it acks its batch in a `finally` block, so
a batch whose body was cancelled or failed (a shutdown during a ClickHouse outage) would still be
committed. Records are processed one by one as they arrive (a history record is already a batch of
thousands of messages) and committed in batches: when the writer asks for a flush (rows or age),
when the records held reach `worker_batch_records` or `worker_batch_bytes`, or soon after the
agent runs out of records (streams/commit_policy.py).

Ticks: table keys may only be written while processing a record of their partition (faust puts a
key's changelog on the current record's partition). So a timer sends an empty record to each
assigned partition of `stream_ticks` every `worker_sweep_interval_s`; processing it runs
`Processor.sweep` for that partition (reorder timeouts, media TTL), also while no webhook arrives.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import faust
import pyarrow as pa
from aiokafka import AIOKafkaProducer
from faust.exceptions import ProducerSendError
from faust.types import EventT, StreamT, TableT

from coex.settings import Settings
from ingest.topics import MAX_MESSAGE_BYTES, NORMALIZED_MESSAGES, track_topics
from schemas.routing import INGEST_TOPICS
from schemas.rows import StatusRow
from sinks.engine_server import serve_engine
from sinks.remote import RemoteEngine
from sinks.takeover import take_over
from streams import metrics, patches, refused
from streams.changelog import ChangelogRecord, send_batches
from streams.commit_policy import QUIET_S, Held, Limits, commit_by_time, commit_due, may_commit_now
from streams.delivery import QUEUE_EVENTS
from streams.helper import HELPER_PROCESSES, Helper, Pending
from streams.patches import (
    aiokafka_consumer,
    committed_offset,
    deliver_without_race,
    fetch_in_batches,
    fetch_only_active,
    fetch_while_full,
    group_settled,
    refuse_stale_acks,
    seek_before_fetching,
)
from streams.prepare import Prepared
from streams.processor import (
    HELD,
    TABLES,
    UNORDERED_KINDS,
    Output,
    Processor,
    Published,
    Record,
    Write,
    held_chunks,
    merge_unordered,
)
from streams.stall import Verdict, Watch, await_chain, kafka_answers, sink_excuses
from streams.topics import CHANGELOG_CONFIGS, TICKS, pick_worker_compression
from streams.web import serve_operator_pages

log = logging.getLogger(__name__)

EXIT_STALLED = 70  # EX_SOFTWARE: the watchdog found the worker stuck (streams/stall.py)
EXIT_AGENT_FAILED = 70  # EX_SOFTWARE too: an error stopped the agent (`StreamWorker._consume`)
# How often a peer of the process serving the embedded engine checks that it still lives.
ENGINE_CHECK_S = 2.0
TOOK_OVER = "this worker opened it and serves it now"
KAFKA_PROBE_S = 10.0  # how long the watchdog waits for Kafka's answer before calling it away

# Bytes sent to normalized_messages before their confirmations are awaited, not at commit only.
PUBLISH_WINDOW_BYTES = 64 * 1024 * 1024
FETCH_BYTES = MAX_MESSAGE_BYTES + 1024 * 1024  # a whole batch of the largest size a topic takes, per partition
# Large records given to the helpers before the agent applies the first of them: enough to keep them
# busy while the agent works, few enough that a rebalance finds little read ahead.
AHEAD_LARGE = 2 * HELPER_PROCESSES
AHEAD_EVENTS = 512  # and records read ahead at most, small ones included


class Writer(Protocol):
    """What the agent needs of `sinks.writer.BatchWriter`."""

    @property
    def buffered_rows(self) -> int: ...

    def add(self, table: str, rows: Sequence[NamedTuple]) -> None: ...

    def add_encoded(self, table: str, data: pa.Table) -> None: ...

    def add_statuses(self, rows: Sequence[StatusRow]) -> None: ...

    def should_flush(self) -> bool: ...

    async def flush(self) -> None: ...

    @property
    def failing(self) -> bool:
        """The last write failed and is being retried."""
        ...

    @property
    def failing_s(self) -> float:
        """How long the batch being retried has been failing; 0 while writes pass."""
        ...


class TableStore:
    """The processor's StateStore over faust tables (values are bytes, keys are strings).

    Writes of the records not yet committed wait in an overlay that reads see first; `commit()`
    applies them to the tables (their changelogs) once what those records published to Kafka is
    confirmed. So no record waits for a Kafka round trip of its own, and state never gets ahead of
    what was published: after a crash the replay finds the old state and publishes again.
    """

    def __init__(self, tables: dict[str, TableT[str, bytes]]) -> None:
        self.tables = tables
        # (table, key) -> (partition of the record that wrote it, value): a key's last write only.
        self._overlay: dict[tuple[str, str], tuple[int, bytes | None]] = {}

    def _store(self, table: str) -> Any:
        # The table's own store: the table runs sensors on every read and sends a changelog
        # record on every write.
        return self.tables[table].data

    def get(self, table: str, key: str) -> bytes | None:
        written = self._overlay.get((table, key))
        if written is not None:
            return written[1]
        value: bytes | None = self._store(table).get(key)
        return value

    def items(self, table: str) -> list[tuple[str, bytes]]:
        merged = dict(self._store(table).items())
        for (name, key), (_, value) in self._overlay.items():
            if name != table:
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return list(merged.items())

    def defer(self, event: EventT[bytes], writes: Sequence[Write]) -> None:
        for w in writes:
            self._overlay[(w.table, w.key)] = (event.message.partition, w.value)

    def commit(self) -> dict[tuple[str, int], list[ChangelogRecord]]:
        """Apply the deferred writes to the tables; return their changelog records to send, by
        changelog topic and partition (a key's changelog is on the partition of the record that
        wrote it). Only each key's last write of the batch counts: a media placeholder and its
        follow-up in one batch cost no changelog record at all."""
        changelog: dict[tuple[str, int], list[ChangelogRecord]] = {}
        for (name, key), (partition, value) in self._overlay.items():
            store = self._store(name)
            if value is None:
                if key not in store:
                    continue
                del store[key]
            else:
                store[key] = value
            table: Any = self.tables[name]  # its serializers are not in TableT
            topic = table.changelog_topic
            raw_key, _ = topic.prepare_key(key, table.key_serializer, None)
            changelog.setdefault((topic.get_topic_name(), partition), []).append((raw_key, value))
        self._overlay.clear()
        return changelog


class StreamWorker:
    """Builds the faust app around a writer; holds the uncommitted records between flushes."""

    def __init__(self, settings: Settings, writer: Writer, helper: Helper | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self.helper = helper or Helper(0)
        datadir = settings.data_dir / "faust"
        datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level itself
        self.app = faust.App(
            settings.worker_group,
            broker=f"kafka://{settings.kafka_bootstrap}",
            store="memory://",
            # faust makes `<id>-data/` folders even for memory tables; not in the working directory.
            datadir=str(datadir),
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            topic_allow_declare=True,
            value_serializer="raw",
            key_serializer="raw",
            consumer_max_fetch_size=FETCH_BYTES,
            consumer_auto_offset_reset="earliest",
            producer_max_request_size=MAX_MESSAGE_BYTES,
            producer_compression_type=pick_worker_compression(),
            producer_acks=-1,
            broker_max_poll_records=1000,
            # Events queued for the agent; their bytes are bounded too (streams/delivery.py).
            stream_buffer_maxsize=QUEUE_EVENTS,
            broker_session_timeout=settings.worker_session_timeout_s,
            broker_heartbeat_interval=min(1.0, settings.worker_session_timeout_s / 3),
            broker_rebalance_timeout=settings.worker_rebalance_timeout_s,
            stream_wait_empty=False,
            stream_ack_exceptions=False,
            stream_ack_cancelled_tasks=False,
            web_enabled=settings.worker_web_port > 0,
            web_port=max(settings.worker_web_port, 1),
            web_bind=settings.worker_web_bind,
        )
        self.ticks = self.app.topic(settings.topic(TICKS), value_serializer="raw")
        self.source = source = self.app.topic(
            *[settings.topic(name) for name in (*INGEST_TOPICS, TICKS)],
            key_serializer="raw",
            value_serializer="raw",
        )
        self.normalized = self.app.topic(settings.topic(NORMALIZED_MESSAGES), value_serializer="raw")
        self.tables = {
            name: self.app.Table(
                name,
                partitions=settings.topic_partitions,
                key_type=str,
                value_type=bytes,
                extra_topic_configs=CHANGELOG_CONFIGS,
            )
            for name in TABLES
        }
        self.store = TableStore(self.tables)
        self.processor = Processor(
            self.store,
            history_flush_timeout_s=settings.history_flush_timeout_s,
            media_pending_ttl_s=settings.media_pending_ttl_s,
            media_followup_window_s=settings.media_followup_window_s,
        )
        self._lock = asyncio.Lock()
        self._uncommitted: list[EventT[bytes]] = []
        self._uncommitted_bytes = 0
        self._limits = Limits(settings.worker_batch_records, settings.worker_batch_bytes, settings.sink_batch_rows)
        self._publishing: list[tuple[Awaitable[Any], bytes, bytes, int]] = []  # sent, key, head, size
        self._publishing_bytes = 0
        self._unordered: list[Published] = []
        self._writing: asyncio.Future[None] | None = None
        self._oldest_uncommitted = 0.0
        self._last_commit = float("-inf")
        self._quiet_since: float | None = None  # when the agent last ran out of records to apply
        self._stream: StreamT[bytes] | None = None
        self._watch = Watch(idle_since=time.monotonic())
        metrics.HELD_CHUNKS.set_function(lambda: held_chunks(self.tables[HELD].keys()))

        self.app.agent(source, name="coex-streams")(self._consume)
        commit_tick = min(settings.sink_batch_age_s, QUIET_S) / 2
        self.app.timer(interval=commit_tick, name="coex-commit-by-time")(self._commit_by_time)
        self.app.timer(interval=settings.worker_sweep_interval_s, name="coex-ticks")(self._send_ticks)
        if settings.worker_stall_timeout_s > 0:
            interval = min(settings.worker_stall_timeout_s / 4, 30.0)
            self.app.timer(interval=interval, name="coex-watchdog")(self._watchdog)
        if isinstance(getattr(writer, "engine", None), RemoteEngine):
            self.app.timer(interval=ENGINE_CHECK_S, name="coex-engine-owner")(self._check_engine_owner)

        serve_operator_pages(self.app, before_metrics=self._update_lag)

    # ---- the agent -------------------------------------------------------------------------------

    async def _consume(self, stream: StreamT[bytes]) -> None:
        """The agent. An error out of it exits the process, to be started again: faust would start
        the agent anew on the same stream, and the records it had read ahead, the one that failed
        among them, were never handled nor acked nor read again, so the worker handled nothing of
        those partitions after it (their commits stuck behind them). A new process restores the
        tables from their changelogs and reads from the committed offsets: nothing is lost."""
        try:
            await self._consume_events(stream)
        except Exception:
            log.critical("the stream agent failed; exiting to be started again", exc_info=True)
            logging.shutdown()
            os._exit(EXIT_AGENT_FAILED)

    async def _consume_events(self, stream: StreamT[bytes]) -> None:
        refuse_stale_acks(self.app)
        seek_before_fetching(self.app, self.source.topics)
        deliver_without_race(self.app, stream.channel.queue)  # type: ignore[attr-defined]
        fetch_while_full(self.app)
        fetch_only_active(self.app)
        fetch_in_batches(self.app)
        noack: Any = stream.noack()  # type: ignore[attr-defined]  # missing from faust's StreamT
        self._stream = noack
        queue = stream.channel.queue  # type: ignore[attr-defined]
        # Records read ahead, each with the helper's work on it when it has some (streams/helper.py).
        ahead: collections.deque[tuple[EventT[bytes], Pending | None]] = collections.deque()
        large = 0
        async for event in noack.events():
            self._quiet_since = None
            pending = None if self._is_tick(event) else self.helper.submit(_value(event))
            ahead.append((event, pending))
            large += pending is not None
            # Apply the oldest once the helper has enough to do, or nothing more is there to read.
            while ahead and (
                ahead[0][1] is None or large >= AHEAD_LARGE or len(ahead) >= AHEAD_EVENTS or queue.empty()
            ):
                head, pending = ahead.popleft()
                large -= pending is not None
                await self._apply(head, pending)
            if not ahead:
                self._quiet_since = time.monotonic()

    async def _apply(self, event: EventT[bytes], pending: Pending | None) -> None:
        prepared = None if self._is_tick(event) else await self.helper.result(_value(event), pending)
        if self._stale(event):
            # Read ahead before a rebalance: faust reads it again from the committed offset (its
            # ack would be refused anyway, see `patches.refuse_stale_acks`).
            metrics.STALE_SKIPPED.inc()
            return
        async with self._lock:
            await self._handle(event, prepared)
            if self._commit_due():
                await self._commit()

    def _is_tick(self, event: EventT[bytes]) -> bool:
        return event.message.topic == self.ticks.get_topic_name()

    def _stale(self, event: EventT[bytes]) -> bool:
        app: Any = self.app
        return bool(event.message.generation_id != app.consumer_generation_id or not app.flow_control.is_active())

    async def _handle(self, event: EventT[bytes], prepared: Prepared | None = None) -> None:
        msg = event.message
        value = _value(event)
        now = time.time()
        self._watch.idle_since = time.monotonic()
        if self._is_tick(event):
            out = self.processor.sweep(msg.partition, now)
        else:
            key = msg.key if isinstance(msg.key, bytes | None) else bytes(msg.key)
            record = Record(msg.topic, msg.partition, msg.offset, key, value)
            out = self.processor.process(record, now, prepared)
            metrics.RECORDS.labels(msg.topic).inc()
        await self._publish(out)
        self.store.defer(event, out.writes)
        self._hand_to_writer(out, msg.topic)
        if not self._uncommitted:
            self._oldest_uncommitted = time.monotonic()
        self._uncommitted.append(event)
        self._uncommitted_bytes += len(value)
        metrics.PENDING_RECORDS.set(len(self._uncommitted))

    async def _publish(self, out: Output) -> None:
        # Sent now, confirmed at commit time, before the state changes are applied (see TableStore).
        # Joined media and live messages are merged per business and sent at commit.
        for record in out.published:
            if record.kind in UNORDERED_KINDS:
                self._unordered.append(record)
            else:
                await self._send(record)

    async def _send(self, record: Published) -> None:
        value = record.payload()
        try:
            sent = await self.normalized.send(key=record.key, value=value, force=True)
        except ProducerSendError as exc:
            self._refused(exc, record.key, value, len(value))
            return
        # Only its head is kept for a refusal at confirmation: a window of records is not held twice.
        self._publishing.append((sent, record.key, record.head(), len(value)))
        metrics.RELEASED.labels(record.kind).inc()
        self._publishing_bytes += len(value)
        if self._publishing_bytes >= PUBLISH_WINDOW_BYTES:
            # Many held chunks released at once: let the broker take these before unpacking more.
            await self._confirm_published()

    async def _confirm_published(self) -> None:
        if self._publishing:
            await track_topics(self._producer(), (self.normalized.get_topic_name(),))
            results = await asyncio.gather(*(sent for sent, *_ in self._publishing), return_exceptions=True)
            for (_, key, head, size), result in zip(self._publishing, results, strict=True):
                if isinstance(result, BaseException):
                    self._refused(result, key, head, size)
            self._publishing.clear()
        self._publishing_bytes = 0

    def _refused(self, exc: BaseException, key: bytes, raw: bytes, size: int) -> None:
        """A record Kafka refuses becomes a dead letter, committed with the batch; any other send
        failure is raised (streams/refused.py)."""
        error = refused.refusal(exc)
        if error is None:
            raise exc
        topic = self.normalized.get_topic_name()
        self.writer.add("dead_letters", [refused.dead_letter(topic, key, raw, size, error, time.time())])
        metrics.DEAD_LETTERS.labels(topic).inc()
        log.warning(
            "dead letter: %s refused a %d-byte record of %s: %r", topic, size, key.decode(errors="replace"), error
        )

    def _hand_to_writer(self, out: Output, topic: str) -> None:
        for table, parts in out.encoded.items():
            for data in parts:
                self.writer.add_encoded(table, data)
                metrics.ROWS.labels(table).inc(data.num_rows)
        for table, rows in out.rows.items():
            self.writer.add(table, rows)
            metrics.ROWS.labels(table).inc(len(rows))
        if out.statuses:
            self.writer.add_statuses(out.statuses)
            metrics.ROWS.labels("message_statuses").inc(len(out.statuses))
        for error in out.dead_letters:
            metrics.DEAD_LETTERS.labels(topic).inc()
            log.warning("dead letter from %s: %s", topic, error)
        for pnid, gap in out.gaps:
            log.warning(
                "history gap: %s phase %s chunk_order %s had not arrived when the chunks after it were released "
                "(sync complete or COEX_HISTORY_FLUSH_TIMEOUT_S passed); released late if it comes",
                pnid,
                gap.phase,
                gap.chunk_order,
            )
        if out.gaps:
            metrics.HISTORY_GAPS.inc(len(out.gaps))
        for pnid, chunk in out.late:
            log.info("history gap filled: %s phase %s chunk_order %s came late", pnid, chunk.phase, chunk.chunk_order)
        if out.late:
            metrics.HISTORY_LATE.inc(len(out.late))
        offboarded = [
            r for r in out.rows.get("account_events", ()) if r.event in ("PARTNER_REMOVED", "ACCOUNT_OFFBOARDED")
        ]
        if offboarded:
            metrics.OFFBOARDED.inc(len(offboarded))

    def _held(self) -> Held:
        return Held(len(self._uncommitted), self._uncommitted_bytes, self.writer.buffered_rows)

    def _writing_now(self) -> bool:
        return self._writing is not None and not self._writing.done()

    def _commit_due(self) -> bool:
        due = self.writer.should_flush()
        return commit_due(self._held(), self._limits, writer_due=due, writing=self._writing_now())

    def _may_commit_now(self) -> bool:
        return may_commit_now(self._held(), self._limits, writing=self._writing_now())

    async def _commit(self) -> None:
        """Hand everything buffered to ClickHouse and ack its records once written.

        The write runs while the agent goes on with the next records (the engine does its work
        outside the GIL); one write at a time, so acks stay in order and memory bounded."""
        await self._wait_for_write()
        for record in merge_unordered(self._unordered):
            await self._send(record)
        self._unordered.clear()
        await self._confirm_published()
        changelog = self.store.commit()
        producer = self._producer()
        sent: list[asyncio.Future[object]] = []
        for (topic, partition), records in changelog.items():
            sent += await send_batches(producer, topic, partition, records)
        events, self._uncommitted, self._uncommitted_bytes = self._uncommitted, [], 0
        self._last_commit = time.monotonic()
        metrics.PENDING_RECORDS.set(0)
        self._writing = asyncio.ensure_future(self._write_and_ack(events, sent))

    def _producer(self) -> AIOKafkaProducer:
        return patches.producer(self.app)

    async def _wait_for_write(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write_and_ack(self, events: list[EventT[bytes]], changelog: list[asyncio.Future[object]]) -> None:
        started = time.monotonic()
        await self.writer.flush()
        await asyncio.gather(*changelog)
        metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
        stream = self._stream
        if stream is not None:
            for event in events:
                await stream.ack(event)

    # ---- timers and pages ------------------------------------------------------------------------

    async def _commit_by_time(self) -> None:
        if not self._uncommitted:
            return
        now = time.monotonic()
        if not commit_by_time(
            age_s=now - self._oldest_uncommitted,
            quiet_s=None if self._quiet_since is None else now - self._quiet_since,
            since_commit_s=now - self._last_commit,
            max_age_s=self.settings.sink_batch_age_s,
        ):
            return
        async with self._lock:
            if self._uncommitted and self._may_commit_now():
                await self._commit()

    async def _send_ticks(self) -> None:
        ticks = self.ticks.get_topic_name()
        await track_topics(self._producer(), (ticks,))
        history = self.settings.topic("history")
        for tp in self.app.consumer.assignment():
            if tp.topic == history:
                await self.ticks.send(key=None, value=b"", partition=tp.partition, force=True)
        self._update_lag()
        log.debug("sent sweep ticks to %s", ticks)

    async def _watchdog(self) -> None:
        app: Any = self.app
        in_transition = bool(
            app.rebalancing or app.tables.recovery.in_recovery or not group_settled(aiokafka_consumer(self.app))
        )
        now = time.monotonic()
        verdict = self._watch.check(
            now,
            timeout_s=self.settings.worker_stall_timeout_s,
            waiting=self._records_waiting(),
            sink_failing=sink_excuses(self.writer.failing_s, self.settings.sink_alert_after_s),
            in_transition=in_transition,
        )
        if verdict is Verdict.FINE:
            return
        idle_s = now - self._watch.idle_since
        answers = await kafka_answers(self._producer().client, KAFKA_PROBE_S)
        verdict = self._watch.probed(time.monotonic(), answered=answers)
        if verdict is Verdict.AWAY:
            log.warning(
                "no record handled for %.0f s while records wait, but Kafka does not answer: an outage, "
                "not a stall; waiting for it",
                idle_s,
            )
            return
        if verdict is Verdict.BACK:
            log.info("Kafka answers again; records are expected within %.0f s", self.settings.worker_stall_timeout_s)
            return
        log.critical(
            "no record handled for %.0f s while records wait on this worker's partitions: stuck; exiting "
            "to be started again (nothing uncommitted is lost; COEX_WORKER_STALL_TIMEOUT_S sets the limit)",
            idle_s,
        )
        for task in asyncio.all_tasks():  # where it is stuck, for the issue to file
            log.critical("task %s waits at:\n  %s", task.get_name(), "\n  ".join(await_chain(task.get_coro())))
        logging.shutdown()
        os._exit(EXIT_STALLED)

    async def _check_engine_owner(self) -> None:
        """A peer of the process serving the embedded engine: once that process is gone, open the
        engine here and serve it (sinks/takeover.py), instead of failing writes until a restart. The
        writer keeps its pending batch and retries it on the engine here; the batch's deduplication
        tokens land it once, also when the dead owner had written part of it."""
        writer: Any = self.writer  # a BatchWriter whose engine was a RemoteEngine at start
        remote = writer.engine
        if not isinstance(remote, RemoteEngine):
            return  # taken over already
        local = await asyncio.to_thread(take_over, self.settings, remote)
        if local is None:
            return
        writer.engine = local
        remote.close()
        # Served until the app stops; the worker flushes and closes the engine after that.
        await self.app.add_async_context(serve_engine(local, self.settings))
        log.warning(
            "the process that served the embedded ClickHouse at %s (pid %d) is gone: %s",
            remote.engine_path,
            remote.owner.pid,
            TOOK_OVER,
        )

    def _records_waiting(self) -> bool:
        ours = set(self.source.topics) - {self.ticks.get_topic_name()}
        return any(high > (committed or 0) for tp, high, committed in self._offsets() if tp.topic in ours)

    def _update_lag(self) -> None:
        for tp, high, committed in self._offsets():
            if committed is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(high - committed, 0))

    def _offsets(self) -> Iterator[tuple[Any, int, int | None]]:
        """(partition, high-water mark, committed offset or None) of each assigned partition with a known end."""
        consumer: Any = self.app.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                yield tp, high, committed_offset(consumer, tp)


def _value(event: EventT[bytes]) -> bytes:
    value = event.message.value
    return value if isinstance(value, bytes) else bytes(value or b"")


def build_app(settings: Settings, writer: Writer | None = None) -> faust.App:
    """The faust app of one stream worker; without a writer, it opens the configured ClickHouse."""
    if writer is None:
        from sinks.engine import open_engine
        from sinks.writer import BatchWriter

        writer = BatchWriter(
            open_engine(settings),
            batch_rows=settings.sink_batch_rows,
            batch_age_s=settings.sink_batch_age_s,
            retry_max_s=settings.sink_retry_max_s,
            alert_after_s=settings.sink_alert_after_s,
        )
    return StreamWorker(settings, writer).app

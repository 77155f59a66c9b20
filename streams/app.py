"""The faust application of one stream worker: its configuration, topics and state tables, the one
agent and its timers. Only wiring; each part's work is in a module of its own.

One agent reads every ingest topic (all keyed by phone_number_id, or the WABA id for
account_update, and co-partitioned) plus a small `stream_ticks` topic (streams/timers.py). It hands
large records to helper processes to parse a few records ahead (streams/read_ahead.py) and applies
the records strictly in their order: for each it calls `Processor.process`, sends what the record
released to `normalized_messages` (streams/publish.py), keeps its state changes in an overlay
(streams/table_store.py) and hands the rows to the ClickHouse writer (streams/handoff.py). A commit
confirms the sends, applies the state changes to the tables, and writes the rows while the agent
goes on; records are acked only once ClickHouse confirmed their rows (streams/commit.py). What it
changes in faust and aiokafka is in streams/patches.py.
"""

from __future__ import annotations

import logging
import os
import time

import faust
from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT

from runtime.settings import Settings
from streams import metrics, patches
from streams.commit import Commits
from streams.commit_policy import QUIET_S, Limits
from streams.delivery import QUEUE_EVENTS
from streams.handoff import hand_to_writer
from streams.helper import Helper, Pending
from streams.onboarding_agent import OnboardingAgent
from streams.prepare import Prepared
from streams.processor import HELD, TABLES, Processor, Record, held_chunks
from streams.publish import PublishWindow
from streams.read_ahead import apply_in_order, event_value
from streams.sink_port import Writer
from streams.stall import Watch
from streams.table_store import TableStore
from streams.timers import Timers
from streams.web import serve_operator_pages
from topics.catalog import (
    CHANGELOG_CONFIGS,
    INGEST_TOPICS,
    MAX_MESSAGE_BYTES,
    NORMALIZED_MESSAGES,
    ONBOARDING_REQUESTS,
    TICKS,
)
from topics.producing import pick_worker_compression

log = logging.getLogger(__name__)

EXIT_AGENT_FAILED = 70  # EX_SOFTWARE: an error stopped the agent (`StreamWorker._consume`)
FETCH_BYTES = MAX_MESSAGE_BYTES + 1024 * 1024  # a whole batch of the largest size a topic takes, per partition


def faust_app(settings: Settings) -> faust.App:
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level itself
    return faust.App(
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


class StreamWorker:
    """Builds the faust app around a writer and wires the agent, the commits and the timers."""

    def __init__(self, settings: Settings, writer: Writer, helper: Helper | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self.helper = helper or Helper(0)
        self.app = faust_app(settings)
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
        self.window = PublishWindow(self.normalized, writer, self._producer)
        self.commits = Commits(
            writer=writer,
            store=self.store,
            window=self.window,
            producer=self._producer,
            limits=Limits(settings.worker_batch_records, settings.worker_batch_bytes, settings.sink_batch_rows),
            max_age_s=settings.sink_batch_age_s,
        )
        self.watch = Watch(idle_since=time.monotonic())
        self.timers = Timers(self.app, settings, writer, source, self.ticks, self.watch, self.processor)
        metrics.HELD_CHUNKS.set_function(lambda: held_chunks(self.tables[HELD].keys()))

        self.app.agent(source, name="coex-streams")(self._consume)
        # The onboardings accepted by the ingest, each in a task of its own (streams/onboarding_agent.py).
        self.onboarding_requests = self.app.topic(
            settings.topic(ONBOARDING_REQUESTS), key_serializer="raw", value_serializer="raw"
        )
        if hasattr(writer, "engine"):  # a BatchWriter: the onboardings are mirrored through its engine
            self.onboardings = OnboardingAgent(
                settings,
                lambda: writer.engine,  # its engine: this process's own after a takeover
                stale=lambda message: patches.read_before_rebalance(self.app, message),
            )
            self.app.agent(self.onboarding_requests, name="coex-onboardings")(self.onboardings.consume)
        commit_tick = min(settings.sink_batch_age_s, QUIET_S) / 2
        self.app.timer(interval=commit_tick, name="coex-commit-by-time")(self.commits.commit_by_time)
        self.timers.install()
        serve_operator_pages(self.app, before_metrics=self.timers.update_lag)

    def _producer(self) -> AIOKafkaProducer:
        return patches.producer(self.app)

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
        queue = stream.channel.queue  # type: ignore[attr-defined]
        patches.refuse_stale_acks(self.app)
        patches.seek_before_fetching(self.app, [*self.source.topics, *self.onboarding_requests.topics])
        patches.deliver_without_race(self.app, queue)
        patches.fetch_while_full(self.app)
        patches.fetch_only_active(self.app)
        patches.fetch_in_batches(self.app)
        noack = stream.noack()  # type: ignore[attr-defined]  # missing from faust's StreamT
        self.commits.stream = noack
        await apply_in_order(
            noack.events(), queue, self.helper, is_tick=self._is_tick, apply=self._apply, quiet=self._quiet
        )

    def _quiet(self, since: float | None) -> None:
        self.commits.quiet_since = since

    async def _apply(self, event: EventT[bytes], pending: Pending | None) -> None:
        prepared = None if self._is_tick(event) else await self.helper.result(event_value(event), pending)
        if patches.read_before_rebalance(self.app, event.message):
            # Read ahead before a rebalance: faust reads it again from the committed offset (its
            # ack would be refused anyway, see `patches.refuse_stale_acks`).
            metrics.STALE_SKIPPED.inc()
            return
        async with self.commits.lock:
            await self._handle(event, prepared)
            if self.commits.due():
                await self.commits.commit()

    def _is_tick(self, event: EventT[bytes]) -> bool:
        return event.message.topic == self.ticks.get_topic_name()

    async def _handle(self, event: EventT[bytes], prepared: Prepared | None = None) -> None:
        msg = event.message
        value = event_value(event)
        now = time.time()
        self.watch.idle_since = time.monotonic()
        if self._is_tick(event):
            out = self.processor.sweep(msg.partition, now)
        else:
            key = msg.key if isinstance(msg.key, bytes | None) else bytes(msg.key)
            record = Record(msg.topic, msg.partition, msg.offset, key, value)
            out = self.processor.process(record, now, prepared)
            metrics.RECORDS.labels(msg.topic).inc()
            if out.purged:
                metrics.PURGED.labels(msg.topic).inc()
        # Sent now, confirmed at commit time, before the state changes are applied (see TableStore).
        await self.window.publish(out)
        self.store.defer(event, out.writes)
        hand_to_writer(self.writer, out, msg.topic)
        self.commits.hold(event, len(value))


def build_app(settings: Settings, writer: Writer | None = None) -> faust.App:
    """The faust app of one stream worker; without a writer, it opens the configured ClickHouse."""
    if writer is None:
        from sinks.connect import open_engine
        from sinks.writer import BatchWriter

        writer = BatchWriter(
            open_engine(settings),
            batch_rows=settings.sink_batch_rows,
            batch_age_s=settings.sink_batch_age_s,
            retry_max_s=settings.sink_retry_max_s,
            alert_after_s=settings.sink_alert_after_s,
        )
    return StreamWorker(settings, writer).app

"""The worker's timers besides the commit: sweep ticks, the watchdog, the embedded engine's owner
check, the purges of `coex purge` read again every PURGE_POLL_S.

Ticks: table keys may only be written while processing a record of their partition (faust puts a
key's changelog on the current record's partition). So a timer sends an empty record to each
assigned partition of `stream_ticks` every `worker_sweep_interval_s`; processing it runs
`Processor.sweep` for that partition (reorder timeouts, media TTL), also while no webhook arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import faust
from faust.types import TopicT

from runtime.settings import Settings
from sinks.engine_server import serve_engine
from sinks.onboarding_watch import read_watch
from sinks.purge import PURGE_POLL_S, read_purges
from sinks.remote import RemoteEngine
from sinks.takeover import take_over
from streams import metrics
from streams.logic import purged
from streams.patches import aiokafka_consumer, committed_offset, group_settled, producer
from streams.processor import Processor
from streams.sink_port import Writer
from streams.stall import Verdict, Watch, await_chain, kafka_answers, sink_excuses
from topics.producing import track_topics

log = logging.getLogger(__name__)

EXIT_STALLED = 70  # EX_SOFTWARE: the watchdog found the worker stuck (streams/stall.py)
# How often a peer of the process serving the embedded engine checks that it still lives.
ENGINE_CHECK_S = 2.0
TOOK_OVER = "this worker opened it and serves it now"
KAFKA_PROBE_S = 10.0  # how long the watchdog waits for Kafka's answer before calling it away


class Timers:
    """What the worker's timers do, over its app, settings and writer."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        writer: Writer,
        source: TopicT,
        ticks: TopicT,
        watch: Watch,
        processor: Processor | None = None,
    ) -> None:
        self.app = app
        self.processor = processor
        self.settings = settings
        self.writer = writer
        self.source = source
        self.ticks = ticks
        self.watch = watch

    def install(self) -> None:
        self.app.timer(interval=self.settings.worker_sweep_interval_s, name="coex-ticks")(self.send_ticks)
        if hasattr(self.writer, "engine"):
            self.app.timer(interval=self.settings.onboarding_watch_interval_s, name="coex-onboarding-watch")(
                self.poll_onboardings
            )
        if self.settings.worker_stall_timeout_s > 0:
            interval = min(self.settings.worker_stall_timeout_s / 4, 30.0)
            self.app.timer(interval=interval, name="coex-watchdog")(self.watchdog)
        if isinstance(getattr(self.writer, "engine", None), RemoteEngine):
            self.app.timer(interval=ENGINE_CHECK_S, name="coex-engine-owner")(self.check_engine_owner)
        if self.processor is not None and hasattr(self.writer, "engine"):
            # Read before the first record, so a replay at start already drops a purged business's.
            self.load_purges()
            self.app.timer(interval=PURGE_POLL_S, name="coex-purges")(self.poll_purges)

    def load_purges(self) -> None:
        """The businesses erased by `coex purge`, from the `purges` table (sinks/purge.py)."""
        writer: Any = self.writer  # a BatchWriter: its engine, this process's own after a takeover
        if self.processor is not None:
            self.processor.purges = purged.from_rows(read_purges(writer.engine))

    async def poll_purges(self) -> None:
        """`coex purge` waits for this poll (sinks/purge.py `settle_s`) before it deletes."""
        try:
            await asyncio.to_thread(self.load_purges)
        except Exception:
            # Purges only grow: the ones known still hold, and the next poll reads the new ones.
            log.warning("could not read the purges table; trying again in %.0f s", PURGE_POLL_S, exc_info=True)

    async def send_ticks(self) -> None:
        ticks = self.ticks.get_topic_name()
        await track_topics(producer(self.app), (ticks,))
        history = self.settings.topic("history")
        for tp in self.app.consumer.assignment():
            if tp.topic == history:
                await self.ticks.send(key=None, value=b"", partition=tp.partition, force=True)
        self.update_lag()
        log.debug("sent sweep ticks to %s", ticks)

    async def watchdog(self) -> None:
        app: Any = self.app
        in_transition = bool(
            app.rebalancing or app.tables.recovery.in_recovery or not group_settled(aiokafka_consumer(self.app))
        )
        now = time.monotonic()
        verdict = self.watch.check(
            now,
            timeout_s=self.settings.worker_stall_timeout_s,
            waiting=self.records_waiting(),
            sink_failing=sink_excuses(self.writer.failing_s, self.settings.sink_alert_after_s),
            in_transition=in_transition,
        )
        if verdict is Verdict.FINE:
            return
        idle_s = now - self.watch.idle_since
        answers = await kafka_answers(producer(self.app).client, KAFKA_PROBE_S)
        verdict = self.watch.probed(time.monotonic(), answered=answers)
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

    async def check_engine_owner(self) -> None:
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

    async def poll_onboardings(self) -> None:
        """The 24-hour watch's gauges (streams/metrics.py), from `onboardings` FINAL."""
        writer: Any = self.writer  # a BatchWriter: its engine, this process's own after a takeover
        database = self.settings.clickhouse_database
        try:
            watched = await asyncio.to_thread(read_watch, writer.engine.query_rows, database)
        except Exception:
            # The gauges keep their last values until a read succeeds.
            log.warning(
                "could not read the onboardings; trying again in %.0f s",
                self.settings.onboarding_watch_interval_s,
                exc_info=True,
            )
            return
        metrics.ONBOARDING.update(watched, time.time(), self.settings.onboarding_silence_alert_s)

    def records_waiting(self) -> bool:
        ours = set(self.source.topics) - {self.ticks.get_topic_name()}
        return any(high > (committed or 0) for tp, high, committed in self.offsets() if tp.topic in ours)

    def update_lag(self) -> None:
        for tp, high, committed in self.offsets():
            if committed is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(high - committed, 0))

    def offsets(self) -> Iterator[tuple[Any, int, int | None]]:
        """(partition, high-water mark, committed offset or None) of each assigned partition with a known end."""
        consumer: Any = self.app.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                yield tp, high, committed_offset(consumer, tp)

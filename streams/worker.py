"""`coex worker`: one stream worker process (run N of them for N-way scale-out).

Before faust starts: open ClickHouse (apply migrations) and create the topics. While it runs: if
this process owns the embedded engine, serve it on loopback so `coex sql` and other workers reach
it; a worker that reaches it through its owner takes it over when the owner dies (streams/timers.py).
On SIGTERM/SIGINT faust stops the agent; then the writer is flushed (for at most
COEX_WORKER_SHUTDOWN_FLUSH_S) and the engine closed; a stop still running STOP_GRACE_S later exits.
Records processed but not yet committed are simply read again by whoever owns the partition next;
every write is idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

import faust

from runtime.logs import hold_back_repeats
from runtime.memory import bound_memory
from runtime.ports import web_port
from runtime.settings import Settings
from sinks.connect import open_engine
from sinks.engine import ClientEngine, Engine
from sinks.engine_server import serve_engine
from sinks.migrate import apply_migrations
from sinks.writer import BatchWriter
from streams.app import StreamWorker
from streams.helper import Helper
from streams.patches import PatchedWorker, PatchTargetMissing, check_patch_targets
from streams.processor import TABLES
from topics.catalog import ensure_changelog_configs, ensure_tick_topic, ensure_topics, log_created

log = logging.getLogger(__name__)

EXIT_STOP_OVERDUE = 1
EXIT_LIBRARY_MISMATCH = 78  # EX_CONFIG: faust, mode or aiokafka is not the pinned version (streams/patches.py)
# What a stop may take beyond the writer's last flush (COEX_WORKER_SHUTDOWN_FLUSH_S): faust's own
# stop, the engine's close. `coex dev` gives a child 60 s in all.
STOP_GRACE_S = 20.0


def stop_deadline_s(settings: Settings) -> float:
    return settings.worker_shutdown_flush_s + STOP_GRACE_S


class _Worker(PatchedWorker):
    """faust's worker plus our resources, entered after start and released after the app stopped."""

    def __init__(self, app: faust.App, *, settings: Settings, engine: Engine, writer: BatchWriter, **kw: Any):
        self.coex_level = logging.getLevelName(str(kw.get("loglevel", "info")).upper())
        super().__init__(app, **kw)
        self.coex_settings = settings
        self.engine = engine
        self.writer = writer
        self.write_left_running = False

    def after_logging_setup(self) -> None:
        # mode leaves the root logger at DEBUG whatever loglevel says; faust then builds a record for
        # every changelog send (a third of the worker's CPU in a history import).
        logging.getLogger().setLevel(self.coex_level)
        # "producer buffer full" is faust's normal backpressure during an import, not a problem.
        logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
        hold_back_repeats()

    def on_first_stop_signal(self) -> None:
        self.loop.call_later(stop_deadline_s(self.coex_settings), self._stop_overdue)

    def _stop_overdue(self) -> None:
        # faust's stop waits for good on its consumer thread when that thread died stopping (Kafka
        # away: its fetcher's close is cancelled); mode never hears of it.
        log.critical(
            "still stopping %.0f s after the signal (Kafka or ClickHouse away?): exiting now; records not "
            "committed are read again at the next start",
            stop_deadline_s(self.coex_settings),
        )
        logging.shutdown()
        os._exit(EXIT_STOP_OVERDUE)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if isinstance(self.engine, ClientEngine) and self.engine.embedded_path:
            await self.add_async_context(serve_engine(self.engine, self.coex_settings))
            log.info("serving the embedded ClickHouse for peers on loopback")

    async def on_shutdown(self) -> None:
        rows, limit = self.writer.buffered_rows, self.coex_settings.worker_shutdown_flush_s
        log.info("flushing %d buffered rows before exit", rows)
        try:
            await asyncio.wait_for(self.writer.flush(), limit)
        except TimeoutError:
            self.write_left_running = True
            # Nothing is lost: rows are acked to Kafka only once written, so their records are read again.
            log.error(
                "ClickHouse did not take the %d buffered rows within %.0f s (COEX_WORKER_SHUTDOWN_FLUSH_S); "
                "exiting without them: their records are not committed and are read again at the next start",
                rows,
                limit,
            )
        # The writer's engine: this process's own once it took the engine over (streams/timers.py).
        await asyncio.to_thread(self.writer.engine.close)
        await super().on_shutdown()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (uvicorn[standard] brings it, and the ingest runs on it): the agent's
    thread spends less on the event loop's own work."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        check_patch_targets()  # before anything else: the patches need the internals they were tested on
    except PatchTargetMissing as exc:
        log.critical("%s", exc)
        return EXIT_LIBRARY_MISMATCH
    bounds = bound_memory()  # before the threads that would get arenas of their own start
    if bounds:
        log.debug("memory bounds: %s", ", ".join(bounds))
    if getattr(args, "worker_id", None):
        settings = settings.model_copy(update={"worker_id": args.worker_id})
    settings = settings.model_copy(update={"worker_web_port": web_port(settings.worker_web_port)})
    engine = open_engine(settings)
    applied = apply_migrations(engine, settings.clickhouse_database)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    log_created(loop.run_until_complete(ensure_topics(settings)))
    loop.run_until_complete(ensure_tick_topic(settings))
    reconfigured = loop.run_until_complete(ensure_changelog_configs(settings, TABLES))
    if reconfigured:
        log.info("changelog topics set to be compacted soon: %s", ", ".join(reconfigured))
    writer = BatchWriter(
        engine,
        batch_rows=settings.sink_batch_rows,
        batch_age_s=settings.sink_batch_age_s,
        retry_max_s=settings.sink_retry_max_s,
        alert_after_s=settings.sink_alert_after_s,
    )
    helper = Helper(settings.worker_helper_min_bytes)
    helper.start()
    app = StreamWorker(settings, writer, helper).app
    level = getattr(args, "log_level", "INFO") or "INFO"
    log.info(
        "stream worker %s joining group %s at %s", settings.worker_id, settings.worker_group, settings.kafka_bootstrap
    )
    worker = _Worker(
        app,
        settings=settings,
        engine=engine,
        writer=writer,
        loop=loop,
        loglevel=level.lower(),
        quiet=True,
    )
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        helper.stop()
    if worker.write_left_running:
        # Its thread waits on an engine that does not answer (a frozen owner: up to the HTTP
        # timeout), and the interpreter would join it before exiting.
        logging.shutdown()
        os._exit(code)
    return code

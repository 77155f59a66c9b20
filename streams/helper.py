"""Helper processes that prepare large records (streams/prepare.py) ahead of the agent.

Parsing and normalizing a history chunk, and writing its JSON and Arrow, is most of an import's
CPU and needs no state: the helpers do it for the next records while the agent applies the ones
before them to the state, so a worker uses more than one core. Small records (a media follow-up,
an echo) are prepared in place by the agent: the round trip would cost more than the work. The
agent takes the results in the records' order (streams/read_ahead.py).

`prepare` is pure, so a helper that dies costs nothing but time: its records are prepared in place
and new helpers are started. Helpers ignore SIGINT and SIGTERM (a Ctrl-C reaches the whole process
group, and the stopping worker still needs its records prepared) and end with the worker, however
that ends.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import NamedTuple

from runtime.memory import bound_memory
from streams import metrics
from streams.prepare import Prepared, prepare

log = logging.getLogger(__name__)

# Two: a history import keeps one of them busy while the ingest takes the other core, and both
# once the last POST is answered (bench/RESULTS.md).
HELPER_PROCESSES = 2
PARENT_POLL_S = 1.0


def _in_helper(worker_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The worker's own memory policy: parsing allocates millions of short-lived objects and blocks
    # of MBs; at the collector's default pace and glibc's, a helper took a third more CPU.
    bound_memory()
    threading.Thread(target=_exit_with, args=(worker_pid,), name="coex-helper-watch", daemon=True).start()


def _exit_with(worker_pid: int) -> None:
    # A worker that is killed never closes the helper's pipe (the helper holds both of its ends).
    while os.getppid() == worker_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _prepare_encoded(value: bytes) -> Prepared:
    return prepare(value, encode=True)


class Pending(NamedTuple):
    pool: ProcessPoolExecutor
    future: Future[Prepared]


class Helper:
    """`submit` a record's value; `result` gives what `prepare` gives, from the helper or in place."""

    def __init__(self, min_bytes: int) -> None:
        """Records of `min_bytes` and more go to the helper (COEX_WORKER_HELPER_MIN_BYTES; a
        one-message webhook is well under the default); 0: no helper."""
        self.min_bytes = min_bytes
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the helper process now (it takes a second), not at the first large record."""
        if self.min_bytes > 0 and self._pool is None:
            self._pool = _new_pool()
            self._pool.submit(int).result()

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, value: bytes) -> Pending | None:
        """The helper's work on `value`, or None when it is to be prepared in place."""
        pool = self._pool
        if pool is None or len(value) < self.min_bytes:
            return None
        try:
            return Pending(pool, pool.submit(_prepare_encoded, value))
        except RuntimeError as exc:  # BrokenProcessPool among them: the helper died
            self._replace(pool, exc)
            return None

    async def result(self, value: bytes, pending: Pending | None) -> Prepared:
        if pending is None:
            return prepare(value)
        try:
            prepared = await asyncio.wrap_future(pending.future)
        except Exception as exc:
            self._replace(pending.pool, exc)
            return prepare(value)
        metrics.PREPARED_AHEAD.inc()
        return prepared

    def _replace(self, failed: ProcessPoolExecutor, exc: BaseException) -> None:
        if failed is not self._pool:
            return  # another record of the same helper found it dead first
        metrics.HELPER_RESTARTS.inc()
        log.warning(
            "the helper process that parses large records failed (%s: %s): parsing them in place until a new one runs",
            type(exc).__name__,
            exc,
        )
        failed.shutdown(wait=False, cancel_futures=True)
        self._pool = _new_pool()  # its process starts with the first record given to it


def _new_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=HELPER_PROCESSES,
        # Not forked: this process runs threads (Kafka, ClickHouse) that a fork would copy mid-call.
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_in_helper,
        initargs=(os.getpid(),),
    )

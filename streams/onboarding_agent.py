"""The onboardings accepted by the ingest's `POST /onboardings`, carried out by a stream worker.

Each record of `onboarding_requests` (onboarding/requests.py) is carried out as `coex onboard`
does (onboarding/sequence.py: the log in Kafka first, mirrored in `onboardings`), in a task of its
own: Graph calls, retried, can take minutes, and the message agent must not wait on them. A
record is acked only once its onboarding is over: done, stopped for good (refused, expired, a Graph
error that will not pass), taken over by another process (`OnboardingTaken`), or past its
24-hour deadline; a failure that may pass (Graph still failing after the client's retries, Kafka or
ClickHouse away) is tried again after a growing delay. A worker that stops or dies leaves the
record unacked: whoever owns its partition next reads it again and resumes from the log, never
making a sync call twice. Acks go in offset order per partition (faust commits past a gap).

A record that cannot be read (not ours, damaged, sealed under another COEX_APP_SECRET) is a dead
letter with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from faust.types import EventT, StreamT
from pydantic import SecretStr

from graph.client import GraphClient
from graph.errors import GraphError
from onboarding import requests, sequence
from onboarding.log import OnboardingLog, OnboardingTaken
from onboarding.sequence import Outcome, Request, Step, SyncType
from onboarding.store import OnboardingStore
from runtime.settings import Settings
from schemas.rows import DeadLetterRow, OnboardingRow
from sinks.encode import rows_to_arrow
from sinks.engine import Engine

log = logging.getLogger(__name__)

RETRY_FIRST_S = 30.0
RETRY_MAX_S = 15 * 60.0
# What a stopping worker gives a run of the sequence under way to end: cancelled between saving a
# sync call as begun and making it, the call would never be made (and never again, at most once).
STOP_WAIT_S = 10.0


class Verdict(Enum):
    DONE = "done"  # over: nothing more to do for this request
    RETRY = "retry"  # may pass later


class Recorded:
    """The Graph client, remembering the last failure (to tell a passing one from a lasting one)
    and the token a signup code was exchanged for (a code is single use: a retry must not ask again)."""

    def __init__(self, graph: GraphClient, exchanged: list[SecretStr]) -> None:
        self._graph = graph
        self.exchanged = exchanged
        self.failure: BaseException | None = None

    async def _call(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except Exception as exc:
            self.failure = exc
            raise

    async def exchange_code(self, code: str) -> SecretStr:
        token: SecretStr = await self._call(self._graph.exchange_code(code))
        self.exchanged.append(token)
        return token

    async def subscribe_app(self, waba_id: str, token: SecretStr) -> None:
        await self._call(self._graph.subscribe_app(waba_id, token))

    async def phone_number(self, phone_number_id: str, token: SecretStr) -> sequence.PhoneInfo:
        info: sequence.PhoneInfo = await self._call(self._graph.phone_number(phone_number_id, token))
        return info

    async def request_sync(self, phone_number_id: str, sync_type: SyncType, token: SecretStr) -> str:
        request_id: str = await self._call(self._graph.request_sync(phone_number_id, sync_type, token))
        return request_id


def verdict(outcome: Outcome, failure: BaseException | None) -> Verdict:
    """Whether an onboarding that stopped short may pass when tried again."""
    if outcome.ok or outcome.row.step in (Step.REFUSED, Step.EXPIRED):
        return Verdict.DONE
    if isinstance(failure, GraphError):
        return Verdict.RETRY if failure.transient or failure.outcome_unknown else Verdict.DONE
    # Not Graph's answer: Kafka or ClickHouse failing under the sequence, or no token at all.
    return Verdict.DONE if isinstance(failure, LookupError) else Verdict.RETRY


@dataclass(slots=True)
class _Pending:
    event: EventT[bytes]
    done: bool = False


@dataclass(slots=True)
class _InOrder:
    """The partition's records not yet acked, in offset order."""

    pending: deque[_Pending] = field(default_factory=deque)
    last_offset: int = -1


class OnboardingAgent:
    """The faust agent (`consume`) and the onboardings it runs."""

    def __init__(
        self,
        settings: Settings,
        engine: Callable[[], Engine],
        *,
        stale: Callable[[Any], bool] = lambda message: False,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.settings = settings
        self._engine = engine  # the writer's: this process's own once it took the embedded engine over
        self._stale = stale
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._key = requests.derive_key(settings.app_secret) if settings.app_secret is not None else None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[Any]] = set()  # those inside a run of the sequence
        self._stopping = False
        self._partitions: dict[Any, _InOrder] = {}

    async def consume(self, stream: StreamT[bytes]) -> None:
        noack = stream.noack()  # type: ignore[attr-defined]  # missing from faust's StreamT
        try:
            async for event in noack.events():
                if self._stale(event.message):
                    continue  # read before a rebalance: faust reads it again (streams/patches.py)
                task = asyncio.ensure_future(self.handle(event, noack))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop the onboardings under way; their records, unacked, are read again by the next owner.
        A run of the sequence under way is let end first (for at most STOP_WAIT_S); the others,
        waiting for their next try or their number's turn, are cancelled at once."""
        self._stopping = True
        for task in self._tasks - self._running:
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=STOP_WAIT_S)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    def _track(self, event: EventT[bytes]) -> _Pending:
        tp, offset = event.message.tp, event.message.offset
        order = self._partitions.get(tp)
        if order is None or offset != order.last_offset + 1:
            # New, or read from the committed offset after a rebalance (again, or past what another
            # worker did meanwhile): the entries before belong to the older read, whose acks would
            # be refused. Offsets follow one another here otherwise (no transactions, no compaction).
            order = self._partitions[tp] = _InOrder()
        order.last_offset = offset
        entry = _Pending(event)
        order.pending.append(entry)
        return entry

    async def _release(self, entry: _Pending, stream: Any) -> None:
        entry.done = True
        order = self._partitions.get(entry.event.message.tp)
        while order is not None and order.pending and order.pending[0].done:
            await stream.ack(order.pending.popleft().event)

    async def handle(self, event: EventT[bytes], stream: Any) -> None:
        """Carry out one record's onboarding until it is over, then ack it (in offset order)."""
        entry = self._track(event)
        message = event.message
        value = message.value if isinstance(message.value, bytes) else b""
        try:
            if self._key is None:
                await self._dead_letter(message, "COEX_APP_SECRET is not set: the request's secret cannot be opened")
            else:
                try:
                    accepted = requests.decode(value, self._key)
                except requests.RequestRefused as exc:
                    await self._dead_letter(message, f"onboarding request refused: {exc}")
                else:
                    await self.until_done(accepted)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Unforeseen: left unacked, read again by the next owner of the partition.
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            log.exception("the onboarding request at %s failed", where)
            return
        await self._release(entry, stream)

    async def until_done(self, accepted: requests.Accepted) -> None:
        """Run the sequence until the onboarding is over or its deadline passes."""
        request = accepted.request
        pnid = request.phone_number_id
        lock = self._locks.setdefault(pnid, asyncio.Lock())
        exchanged: list[SecretStr] = []
        delay = self._retry_first_s
        async with lock:  # one onboarding of a number at a time here; other processes are fenced
            while True:
                if exchanged:  # the code was exchanged by an earlier try: it cannot be again
                    request = Request(request.waba_id, pnid, token=exchanged[0])
                if self._stopping:
                    raise asyncio.CancelledError  # unacked: the partition's next owner carries it on
                verdict_, deadline = await self._run_once(request, exchanged)
                if verdict_ is Verdict.DONE:
                    return
                deadline = deadline or accepted.accepted_at + sequence.WINDOW_S
                if time.time() + delay > deadline:
                    log.error("onboarding of %s: giving up, its 24-hour deadline passes before the next try", pnid)
                    return
                log.warning("onboarding of %s: trying again in %.0f s", pnid, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    async def _run_once(self, request: Request, exchanged: list[SecretStr]) -> tuple[Verdict, int]:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._once(request, exchanged)
        finally:
            self._running.discard(task)

    async def _once(self, request: Request, exchanged: list[SecretStr]) -> tuple[Verdict, int]:
        """One run of the sequence: its verdict and the onboarding's deadline (0 if none began)."""
        pnid = request.phone_number_id
        engine = self._engine()
        store = OnboardingStore(engine, self.settings.clickhouse_database)

        def say(line: str) -> None:
            log.info("onboarding of %s: %s", pnid, line)

        async def mirror(row: OnboardingRow) -> None:
            await asyncio.to_thread(store.mirror, row)

        async def offboarded_since(waba_id: str, since: int) -> bool:
            return await asyncio.to_thread(store.offboarded_since, waba_id, since)

        try:
            async with GraphClient(self.settings) as client, OnboardingLog(self.settings, pnid) as onboarding_log:
                graph = Recorded(client, exchanged)
                outcome = await sequence.run(
                    request,
                    onboarding_log,
                    graph,
                    now=lambda: int(time.time()),
                    offboarded_since=offboarded_since,
                    system_token=self.settings.graph_token,
                    say=say,
                    mirror=mirror,
                )
        except OnboardingTaken as exc:
            log.info("onboarding of %s: %s", pnid, exc)
            return Verdict.DONE, 0
        except Exception as exc:
            log.warning("onboarding of %s: %s: %s", pnid, type(exc).__name__, exc)
            return Verdict.RETRY, 0
        result = verdict(outcome, graph.failure)
        if outcome.ok:
            say(f"done: {outcome.message}")
        elif result is Verdict.DONE:
            log.error("onboarding of %s stopped: %s", pnid, outcome.message)
        return result, outcome.row.deadline_at

    async def _dead_letter(self, message: Any, reason: str) -> None:
        """The record, written to `dead_letters` (retried until ClickHouse takes it)."""
        key = message.key.decode(errors="replace") if isinstance(message.key, bytes) else ""
        raw = message.value.decode(errors="replace") if isinstance(message.value, bytes) else ""
        row = DeadLetterRow(message.topic, message.partition, message.offset, key, reason, raw, time.time())
        log.error("%s[%d]@%d: %s", message.topic, message.partition, message.offset, reason)
        delay = 1.0
        while True:
            try:
                data = rows_to_arrow(DeadLetterRow, [row])
                await asyncio.to_thread(self._engine().insert_arrow, "dead_letters", data)
                return
            except Exception as exc:
                log.warning("writing a dead letter failed (%r); again in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

"""Posting deliveries to a webhook URL the way the platform does: signed, concurrent, retried.

Bodies are built in a thread while earlier ones are on the wire; `concurrency` POSTs share
keep-alive HTTP/1.1 connections; 5xx, 408, 429 and transport errors are retried with jittered
exponential backoff (the platform retries too); other answers count as failures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp

from coex.simulator.scenario import Delivery
from coex.simulator.wire import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(slots=True)
class PostStats:
    webhooks: int = 0  # delivered (2xx), redeliveries included
    redeliveries: int = 0
    messages: int = 0
    bytes: int = 0
    retries: int = 0
    failed: int = 0
    aborted: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True, slots=True)
class PostOptions:
    url: str
    secret: bytes | None  # None: send unsigned (only for an ingest running insecure)
    concurrency: int = 8
    rate: float = 0.0  # POSTs per second, 0 for no limit
    # Like the platform, a delivery is retried while the target is away (an ingest restarting takes
    # tens of seconds); after this long it counts as failed.
    retry_for_s: float = 120.0
    timeout_s: float = 60.0
    # Consecutive deliveries that fail every attempt before giving up on the target entirely.
    give_up_after: int = 8


class RateLimiter:
    """Spaces request starts `1/rate` seconds apart across all workers."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


def backoff_s(attempt: int) -> float:
    return float(min(10.0, 0.2 * 2**attempt) * (0.5 + random.random()))


async def post_all(
    deliveries: Iterator[Delivery],
    options: PostOptions,
    on_progress: Callable[[PostStats], None] | None = None,
) -> PostStats:
    """POST every delivery; returns the tally. Stops early only when the target stays down."""
    stats = PostStats()
    queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=options.concurrency * 2)
    limiter = RateLimiter(options.rate)
    streak = 0  # consecutive deliveries that failed every attempt
    # aiohttp, not httpx: httpx's connection pool costs ~4 ms of CPU per request, which made the
    # simulator, not the ingest, the bottleneck of end-to-end runs.
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            nonlocal streak
            while (delivery := await queue.get()) is not None:
                if stats.aborted:
                    continue
                if await _post_one(client, options, limiter, stats, delivery.body):
                    streak = 0
                    stats.webhooks += 1
                    stats.redeliveries += delivery.redelivery
                    stats.messages += delivery.messages
                    stats.bytes += len(delivery.body)
                else:
                    stats.failed += 1
                    streak += 1
                    if streak >= options.give_up_after:
                        stats.aborted = True

        async def report() -> None:
            while on_progress is not None:
                on_progress(stats)
                await asyncio.sleep(0.25)

        workers = [asyncio.create_task(worker()) for _ in range(options.concurrency)]
        reporter = asyncio.create_task(report())
        try:
            while not stats.aborted:
                # Building a body is CPU work; a thread lets earlier POSTs progress meanwhile. A few
                # at a time: one thread hop per delivery cost more CPU than the POST itself.
                batch = await asyncio.to_thread(_take, deliveries, options.concurrency)
                for delivery in batch:
                    await queue.put(delivery)
                if len(batch) < options.concurrency:
                    break
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            reporter.cancel()
            for task in workers:
                task.cancel()
    if on_progress is not None:
        on_progress(stats)
    return stats


def _take(deliveries: Iterator[Delivery], n: int) -> list[Delivery]:
    return list(itertools.islice(deliveries, n))


async def _post_one(
    client: aiohttp.ClientSession, options: PostOptions, limiter: RateLimiter, stats: PostStats, body: bytes
) -> bool:
    headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
    if options.secret is not None:
        headers[SIGNATURE_HEADER] = sign(options.secret, body)
    reason = ""
    first = time.monotonic()
    attempt = 0
    while True:
        await limiter.wait()
        try:
            async with client.post(options.url, data=body, headers=headers) as response:
                text = await response.text(errors="replace")
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return True
            reason = f"HTTP {status}: {text[:200]}"
            if status < 500 and status not in RETRYABLE_STATUS:
                break  # the receiver refuses this body; sending it again changes nothing
        delay = backoff_s(attempt)
        if time.monotonic() + delay - first > options.retry_for_s:
            break
        if attempt == 0:  # the same words for every delivery, so the log shows it once per window
            log.warning("target not taking deliveries (%s); each retried up to %.0f s", reason, options.retry_for_s)
        attempt += 1
        stats.retries += 1
        await asyncio.sleep(delay)
    log.warning("delivery of %d bytes failed: %s", len(body), reason)
    return False

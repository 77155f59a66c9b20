"""`coex simulate`: sign and post realistic Coexistence traffic to an ingest, then summarize.

Progress goes to stderr (one rewritten line on a terminal, a line every 10 s otherwise), the
summary to stdout; the exit code is 1 when any webhook could not be delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

from coex.dev_secret import app_secret
from coex.simulator.expected import Expected
from coex.simulator.poster import PostOptions, PostStats, post_all
from coex.simulator.scenario import Simulation
from runtime.settings import Settings

# Per-message expectations are written only up to this many messages (about 200 bytes each).
DETAIL_LIMIT = 200_000


def run(settings: Settings, args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        sys.stderr.write(f"coex simulate: {problem}\n")
        return 2
    url = args.url or f"http://127.0.0.1:{settings.ingest_port}/webhook"
    secret = args.secret or app_secret(settings)
    if not secret and not settings.insecure_skip_signature:
        sys.stderr.write("coex simulate: no app secret: pass --secret or set COEX_APP_SECRET\n")
        return 2
    detail = args.expect_out is not None and args.businesses * args.messages <= DETAIL_LIMIT
    ids = (args.waba_id, args.phone_number_id) if args.phone_number_id else None
    sim = Simulation(args.businesses, args.messages, args.seed, detail=detail, ids=ids)
    options = PostOptions(
        url=url,
        secret=secret.encode() if secret else None,
        concurrency=args.concurrency,
        rate=args.rate,
        **({} if args.retry_for is None else {"retry_for_s": args.retry_for}),
    )
    sys.stderr.write(
        f"coex simulate: {_businesses(args.businesses)}, {sim.total_messages} messages, {sim.total} webhooks -> {url}\n"
    )
    progress = Progress(sim.total, sim.total_messages)
    stats = asyncio.run(post_all(sim.deliveries(), options, progress.show))
    progress.close()
    if args.expect_out is not None and sim.finished:
        Path(args.expect_out).write_bytes(orjson.dumps(sim.expected.to_json(), option=orjson.OPT_INDENT_2))
    sys.stdout.write(summary(args.businesses, stats) + "\n")
    if sim.finished:
        sys.stdout.write(users_line(sim.expected) + "\n")
    if stats.aborted:
        unwritten = f"; {args.expect_out} not written: not every webhook was sent" if args.expect_out else ""
        sys.stderr.write(f"coex simulate: gave up: the target kept failing (see the warnings above){unwritten}\n")
    return 0 if stats.failed == 0 and not stats.aborted else 1


def _check(args: argparse.Namespace) -> str:
    if args.businesses is None:
        args.businesses = 1 if args.phone_number_id else 3
    if bool(args.waba_id) != bool(args.phone_number_id):
        return "--waba-id and --phone-number-id go together"
    if args.phone_number_id and args.businesses != 1:
        return "--phone-number-id plays one business: leave --businesses at 1"
    if args.businesses < 1:
        return "--businesses must be at least 1"
    if args.messages < 0:
        return "--messages must not be negative"
    if args.concurrency < 1:
        return "--concurrency must be at least 1"
    if args.rate < 0:
        return "--rate must not be negative"
    if args.retry_for is not None and args.retry_for < 0:
        return "--retry-for must not be negative"
    return ""


def summary(businesses: int, stats: PostStats) -> str:
    seconds = max(stats.seconds, 1e-9)
    return (
        f"simulate: {_businesses(businesses)}, {stats.messages} messages, {stats.webhooks} webhooks "
        f"({stats.redeliveries} redeliveries, {stats.retries} retries, {stats.failed} failed), "
        f"{stats.bytes / 1e6:.1f} MB in {seconds:.1f} s "
        f"({stats.webhooks / seconds:.0f} webhooks/s, {stats.messages / seconds:.0f} messages/s)"
    )


def _businesses(count: int) -> str:
    return f"{count} business" if count == 1 else f"{count} businesses"


def users_line(expected: Expected) -> str:
    """The users the traffic names, one per user however many identifiers their records carry."""
    return (
        f"users: {expected.users} ({expected.users_hiding_number} with hidden numbers, "
        f"{expected.users_switching} of them since mid-history)"
    )


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, printed every 10 s otherwise."""

    WIDTH = 24

    def __init__(self, total: int, messages: int) -> None:
        self.total = max(total, 1)
        self.messages = messages
        self.tty = sys.stderr.isatty()
        self.last_line_at = 0.0

    def show(self, stats: PostStats) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last_line_at < 10.0:
            return
        self.last_line_at = now
        done = stats.webhooks + stats.failed
        filled = self.WIDTH * done // self.total
        seconds = max(stats.seconds, 1e-9)
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * done // self.total:3d}% "
            f"{done}/{self.total} webhooks{f' ({stats.failed} failed)' if stats.failed else ''}  "
            f"{stats.messages}/{self.messages} messages  "
            f"{stats.bytes / 1e6:.1f} MB  {stats.webhooks / seconds:.0f}/s"
        )
        sys.stderr.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")

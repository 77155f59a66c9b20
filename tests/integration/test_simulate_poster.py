"""`coex simulate`'s poster against a real local HTTP server: retried while the target is away."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

from coex.simulator.poster import PostOptions, post_all
from coex.simulator.scenario import Delivery

ROOT = Path(__file__).resolve().parents[2]


def deliveries(n: int) -> Iterator[Delivery]:
    for i in range(n):
        yield Delivery(body=b'{"n": %d}' % i, messages=1, redelivery=False)


async def test_deliveries_wait_for_a_target_that_comes_back() -> None:
    started = time.monotonic()
    got: list[bytes] = []

    async def webhook(request: web.Request) -> web.Response:
        if time.monotonic() - started < 1.5:  # restarting: the platform would retry
            return web.Response(status=503)
        got.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    await web.SockSite(runner, listening).start()
    try:
        options = PostOptions(url=f"http://127.0.0.1:{port}/webhook", secret=b"s", concurrency=4, retry_for_s=30)
        stats = await post_all(deliveries(10), options)
    finally:
        await runner.cleanup()
    assert (stats.webhooks, stats.failed, stats.aborted) == (10, 0, False)
    assert stats.retries > 0 and len(got) == 10


async def test_a_target_that_stays_away_is_given_up_after_the_retry_window() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = PostOptions(
        url=f"http://127.0.0.1:{port}/webhook", secret=b"s", concurrency=2, retry_for_s=1.0, give_up_after=2
    )
    started = time.monotonic()
    stats = await post_all(deliveries(50), options)
    assert stats.aborted and stats.webhooks == 0 and stats.failed >= 2
    assert time.monotonic() - started < 10


def test_coex_simulate_gives_up_on_a_target_that_stays_away_and_says_what_it_did_not_write(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    expect = tmp_path / "expected.json"
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "coex"), "simulate", "--url", f"http://127.0.0.1:{port}/webhook",
         "--secret", "s", "--businesses", "1", "--messages", "50", "--retry-for", "0.5",
         "--expect-out", str(expect)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"gave up: the target kept failing (see the warnings above); {expect} not written" in done.stderr
    assert not expect.exists()

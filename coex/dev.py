"""`coex dev`: the whole pipeline on one machine, supervised, with a live status line per business.

Starts (or reuses) the local Kafka broker, migrates ClickHouse and creates the topics, then runs
`coex ingest` and one `coex worker` (which owns the embedded ClickHouse) as child processes,
restarting either if it dies. Ctrl-C (or SIGTERM, or its terminal closing) stops them (the worker
flushes what it holds) and the broker if this command started it, also when nothing can read its
output any more; killed outright, it still takes the worker and the ingest with it (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from coex import kafka_local
from coex.dev_secret import dev_secret_path, ensure_dev_secret
from runtime.ports import port_free, web_port
from runtime.redact import redact_url, scrub
from runtime.settings import Settings

log = logging.getLogger("coex.dev")

STATUS_EVERY_S = 5.0
# A child up this long has recovered: its next exit is retried after the shortest backoff again.
STABLE_S = 60.0


class Console:
    """coex dev's terminal. Output that cannot be written (a `coex dev | tee` whose tee died of the
    same Ctrl-C) must not stop the shutdown: the first failed write sends stdout (and stderr, when it
    is the same pipe), and so every later child's, to /dev/null."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.broken = False

    def say(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):  # a broken pipe; a closed stream
            self.broken = True
            fds = (1, 2) if os.path.sameopenfile(1, 2) else (1,)
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in fds:
                os.dup2(devnull, fd)  # the interpreter's own flush at exit must not fail again
            os.close(devnull)


def broker_listens(bootstrap: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP on the first bootstrap address: enough to decide whether to start
    the local broker, before any Kafka client exists (streams.stall.kafka_answers asks a live client)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


PR_SET_PDEATHSIG = 1


def _terminated_with(parent: int) -> Callable[[], None]:
    """For a child, before it runs: SIGTERM once coex dev is gone, even killed with SIGKILL, so that
    no worker outlives it holding the embedded engine the next `coex dev` needs (Linux only)."""

    def arrange() -> None:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # coex dev died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)

    def start(self) -> None:
        assert self.log_path is not None
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._log_file = log_file
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_terminated_with(os.getpid()) if sys.platform == "linux" else None,
        )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


def tend(child: Child, now: float, console: Console) -> None:
    """One supervision step: note a child that exited, start it again once its backoff is over.

    The backoff doubles with each exit (2 s up to 30 s) and starts over once a child has stayed up
    for STABLE_S, so a crash after hours of work is retried after 2 s, not 30."""
    if child.proc is None:
        if now >= child.next_start:
            child.start()
        return
    if child.alive():
        if now - child.started_at >= STABLE_S:
            child.restarts = 0
        return
    child.restarts += 1
    delay = min(30.0, 2.0**child.restarts)
    console.say(
        f"coex dev: {child.name} exited ({child.proc.returncode}); restarting in {delay:.0f} s (see {child.log_path})\n"
    )
    child.next_start = now + delay
    child.proc = None


def child_env(settings: Settings, secret: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COEX_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        COEX_CLICKHOUSE_URL=settings.clickhouse_url,
        COEX_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        COEX_APP_SECRET=secret,
        COEX_INGEST_PORT=str(settings.ingest_port),
        COEX_DATA_DIR=str(settings.data_dir),
        COEX_TOPIC_PREFIX=settings.topic_prefix,
        COEX_WORKER_WEB_PORT=str(settings.worker_web_port),
        COEX_INGEST_DOCS="1" if settings.ingest_docs else "0",
    )
    return env


def with_dev_defaults(settings: Settings) -> Settings:
    """On for a developer unless COEX_INGEST_DOCS says otherwise: the ingest's /docs, /redoc and
    /openapi.json (off by default, on a public port)."""
    if "ingest_docs" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"ingest_docs": True})


def coex_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "coex.cli", *args]


def prepare(env: dict[str, str]) -> None:
    """Migrations and topics before the children start. A child process, so that this one never
    opens the embedded engine that the worker must own."""
    done = subprocess.run(coex_argv("migrate"), env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"coex dev: coex migrate failed (exit {done.returncode})")


def status_lines(settings: Settings) -> list[str]:
    """One line per business, read through the worker that owns the embedded engine; never by
    opening the engine here, which would keep the worker from owning it."""
    from coex.lag import fetch_lag
    from coex.status import add_lag, fetch_status, format_line
    from sinks.client import parse_url
    from sinks.connect import open_engine
    from sinks.engine import Engine
    from sinks.remote import connect_owner

    target = parse_url(settings.clickhouse_url)
    engine: Engine | None = (
        connect_owner(target.path, settings.clickhouse_database) if target.embedded else open_engine(settings)
    )
    if engine is None:
        return []
    try:
        rows = fetch_status(
            engine.query_rows, settings.clickhouse_database, silence_s=settings.onboarding_silence_alert_s
        )
    finally:
        engine.close()
    add_lag(rows, asyncio.run(fetch_lag(settings)) if rows else None)
    return [format_line(row) for row in rows]


def banner(settings: Settings, secret_from_file: bool) -> str:
    port, worker_port = settings.ingest_port, settings.worker_web_port
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics (worker)" if worker_port > 0 else "(worker: off)"
    secret_hint = (
        f"app secret in {dev_secret_path(settings)} (coex simulate reads it)"
        if secret_from_file
        else "app secret from COEX_APP_SECRET"
    )
    return "\n".join(
        [
            "coex dev: pipeline running",
            f"  webhook   POST http://127.0.0.1:{port}/webhook   ({secret_hint})",
            f"  health    http://127.0.0.1:{port}/readyz",
            *([f"  api docs  http://127.0.0.1:{port}/docs"] if settings.ingest_docs else []),
            f"  metrics   http://127.0.0.1:{port}/metrics (ingest)   {worker_metrics}",
            f"  kafka     {settings.kafka_bootstrap}",
            f'  sql       coex sql "SELECT count() FROM messages FINAL"   ({redact_url(settings.clickhouse_url)})',
            "  traffic   coex simulate --businesses 3 --messages 2000",
            f"  logs      {settings.data_dir / 'logs'}",
            "  Ctrl-C stops everything.",
        ]
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not port_free(settings.ingest_host, settings.ingest_port):
        sys.stderr.write(
            f"coex dev: port {settings.ingest_port} is taken (another coex dev or ingest?): stop that "
            "process or set COEX_INGEST_PORT\n"
        )
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)

    console = Console(sys.stdout)
    started_kafka = False
    if not broker_listens(settings.kafka_bootstrap):
        console.say(f"coex dev: starting the local Kafka broker on {settings.kafka_bootstrap}\n")
        kafka_local.script(settings, "start")
        started_kafka = True
    else:
        console.say(f"coex dev: using the Kafka broker at {settings.kafka_bootstrap}\n")

    secret_from_file = settings.app_secret is None
    secret = ensure_dev_secret(settings)
    # Chosen here rather than by the worker, so the banner can name it.
    settings = settings.model_copy(update={"worker_web_port": web_port(settings.worker_web_port)})
    settings = with_dev_defaults(settings)
    env = child_env(settings, secret)
    prepare(env)
    children = [
        Child("worker", coex_argv("worker"), env, log_path=logs / "worker.log"),
        Child("ingest", coex_argv("ingest"), env, log_path=logs / "ingest.log"),
    ]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: its terminal closed
        signal.signal(signum, on_signal)

    for child in children:
        child.start()
    console.say(banner(settings, secret_from_file) + "\n")

    last_status = 0.0
    shown: list[str] = []
    try:
        while not stopping:
            now = time.monotonic()
            for child in children:
                tend(child, now, console)
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                try:
                    lines = status_lines(settings)
                except Exception as exc:  # the worker may still be starting
                    log.debug("status not available yet: %s", scrub(str(exc), settings.clickhouse_url))
                    lines = shown
                stamp = time.strftime("%H:%M:%S")
                # Only the businesses whose line changed since the last print.
                console.say("".join(f"{stamp}  {line}\n" for line in lines if line not in shown))
                shown = lines
            time.sleep(0.2)
    finally:
        console.say("coex dev: stopping (the worker flushes what it holds)\n")
        for child in reversed(children):
            child.stop(timeout=60.0)
        if started_kafka:
            kafka_local.script(settings, "stop", check=False)
        console.say("coex dev: stopped\n")
    return 0

"""`coex dev` as a terminal program: its banner names where the worker serves /metrics (another port
when the configured one is taken); `coex dev | tee dev.log` then Ctrl-C (tee dies of the same Ctrl-C)
still stops everything it started (worker, ingest, broker), though nothing it prints can be read;
and a `coex dev` killed outright takes its worker and ingest with it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.broker_kit import Broker, free_port

COEX = [sys.executable, "-m", "coex.cli"]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    banner: str
    broker: Broker
    ingest_port: int
    sql_port: int
    taken_metrics_port: int

    def still_running(self) -> list[str]:
        ports = (("broker", self.broker.port), ("ingest", self.ingest_port), ("worker", self.sql_port))
        return [name for name, port in ports if answers(port)]


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    """`coex dev` on a broker it starts itself, its stdout a pipe read up to the banner's last line."""
    taken = socket.socket()
    taken.bind(("0.0.0.0", free_port()))
    taken.listen()
    (tmp_path / "kafka").mkdir()
    broker = Broker(tmp_path / "kafka")  # only its free ports and jars: coex dev starts the broker
    ingest_port, sql_port = free_port(), free_port()
    env = {k: v for k, v in broker.env.items() if not k.startswith("COEX_") or k.startswith("COEX_KAFKA_")}
    env.update(
        COEX_DATA_DIR=str(tmp_path / ".coex"),
        COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'ch'}",
        COEX_TOPIC_PREFIX=f"devstop{uuid.uuid4().hex[:8]}.",
        COEX_INGEST_PORT=str(ingest_port),
        COEX_SQL_PORT=str(sql_port),
        COEX_WORKER_WEB_PORT=str(taken.getsockname()[1]),
    )
    proc = subprocess.Popen([*COEX, "dev"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[bytes] = []
    running = threading.Event()

    def read_banner() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if b"Ctrl-C stops everything" in line:  # the banner's last line
                running.set()
                return

    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    try:
        assert running.wait(180), b"".join(seen).decode(errors="replace")
        reader.join(5)
        deadline = time.monotonic() + 120
        while not (answers(ingest_port) and answers(sql_port)):  # the children are up
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        yield Dev(proc, b"".join(seen).decode(), broker, ingest_port, sql_port, taken.getsockname()[1])
    finally:
        taken.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # so that it stops its children before it goes
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.run("stop")  # nothing to do unless coex dev left it running


def test_the_banner_names_the_port_the_worker_serves_metrics_on(dev: Dev) -> None:
    found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics \(worker\)", dev.banner)
    assert found, dev.banner
    assert int(found[1]) != dev.taken_metrics_port
    page = httpx.get(f"http://127.0.0.1:{found[1]}/metrics", timeout=10)
    assert page.status_code == 200 and "coex_" in page.text


def test_ctrl_c_stops_all_it_started_though_its_output_has_no_reader(dev: Dev) -> None:
    assert dev.proc.stdout is not None and answers(dev.broker.port)
    dev.proc.stdout.close()  # the reader is gone: every later write of coex dev fails
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(120) == 0
    assert dev.still_running() == []


def test_a_killed_coex_dev_takes_its_worker_and_ingest_with_it(dev: Dev) -> None:
    dev.proc.kill()
    deadline = time.monotonic() + 60  # the worker flushes what it holds first
    while dev.still_running() != ["broker"]:  # nohup'd: the next coex dev reuses it
        assert time.monotonic() < deadline, dev.still_running()
        time.sleep(0.5)

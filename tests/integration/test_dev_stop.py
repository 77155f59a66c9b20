"""coex dev's terminal. Its banner names where the worker serves /metrics (another port when the
configured one is taken). `coex dev | tee dev.log`, then Ctrl-C: tee dies of the same Ctrl-C, and
coex dev must still stop everything it started (worker, ingest, broker), though nothing it prints
can be read."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.integration.broker_kit import Broker, free_port

COEX = [sys.executable, "-m", "coex.cli"]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_coex_dev_names_the_worker_metrics_port_and_stops_all_it_started_without_a_reader(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("0.0.0.0", free_port()))
    taken.listen()
    (tmp_path / "kafka").mkdir()
    broker = Broker(tmp_path / "kafka")  # only its free ports and jars: coex dev starts the broker itself
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
    assert proc.stdout is not None
    seen: list[bytes] = []
    running = threading.Event()

    def read_until_running() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if b"Ctrl-C stops everything" in line:  # the banner's last line
                running.set()
                return

    reader = threading.Thread(target=read_until_running, daemon=True)
    reader.start()
    try:
        assert running.wait(180), b"".join(seen).decode(errors="replace")
        deadline = time.monotonic() + 120
        while not (answers(ingest_port) and answers(sql_port)):  # the children are up
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        assert answers(broker.port)
        banner = b"".join(seen).decode()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics \(worker\)", banner)
        assert found, banner
        worker_port = int(found[1])
        assert worker_port != taken.getsockname()[1]
        page = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10)
        assert page.status_code == 200 and "coex_" in page.text
        reader.join(5)
        proc.stdout.close()  # the reader is gone: every later write of coex dev fails
        proc.send_signal(signal.SIGINT)
        code = proc.wait(120)
        left = [name for name, port in (("broker", broker.port), ("ingest", ingest_port), ("worker", sql_port))
                if answers(port)]  # fmt: skip
    finally:
        taken.close()
        if proc.poll() is None:
            proc.kill()
        broker.run("stop")  # nothing to do unless coex dev left it running
    assert code == 0
    assert left == [], f"still running after coex dev stopped: {left}"

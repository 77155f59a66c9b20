"""`coex dev` refuses to start when its ingest port is taken, instead of announcing a dead URL."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_coex_dev_says_its_ingest_port_is_taken_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as spare:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spare.bind(("127.0.0.1", 0))  # a broker address nothing answers on: nothing may be started there
        env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
        env.update(
            COEX_INGEST_PORT=str(port),
            COEX_KAFKA_BOOTSTRAP=f"127.0.0.1:{spare.getsockname()[1]}",
            COEX_DATA_DIR=str(tmp_path / ".coex"),
            COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'ch'}",
        )
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "coex"), "dev"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2, done.stderr
    assert f"port {port} is taken" in done.stderr
    assert "starting the local Kafka broker" not in done.stdout
    assert not (tmp_path / ".coex").exists()

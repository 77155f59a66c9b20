"""A throwaway broker of a test's own (deploy/kafka-local.sh on free ports), to stop, kill and start
again without touching the session's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "kafka-local.sh"


def free_port_pair() -> int:
    """A port p with p+1 free too (kafka-local.sh puts the controller on p+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


class Broker:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = dict(
            os.environ, COEX_KAFKA_BOOTSTRAP=self.bootstrap, COEX_KAFKA_HOME=str(home), COEX_KAFKA_HEAP="512m"
        )
        self.env.pop("COEX_KAFKA_CONTROLLER_PORT", None)
        # Reuse jars another local broker already resolved, rather than fetching them again.
        for candidate in (ROOT / ".coex" / "test-kafka" / "libs", ROOT / ".coex" / "kafka" / "libs"):
            if (candidate / ".complete").exists():
                (home / "libs").symlink_to(candidate)
                break

    def run(self, action: str) -> None:
        subprocess.run(["bash", str(SCRIPT), action], env=self.env, check=True, timeout=180)

    def kill(self) -> None:
        """A crash: SIGKILL, no controlled shutdown (the next start recovers its logs)."""
        os.kill(int((self.home / "kafka.pid").read_text()), signal.SIGKILL)

"""A throwaway broker of a test's own (deploy/kafka-local.sh on free ports), to stop, kill and start
again without touching the session's."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "kafka-local.sh"


# Ports for servers a test starts: below Linux's ephemeral range (32768-60999), which the kernel
# hands to client sockets, so that no connection made meanwhile takes the port before the server
# binds it (a worker's web port was taken so once).
_LISTEN_PORTS = range(20000, 32700)


def free_port(pair: bool = False) -> int:
    """A free port to listen on (with `pair`, p+1 too: kafka-local.sh puts the controller on p+1)."""
    rnd = random.Random()
    for _ in range(200):
        port = rnd.choice(_LISTEN_PORTS)
        if all(_bindable(p) for p in ((port, port + 1) if pair else (port,))):
            return port
    raise RuntimeError("no free port")


def free_port_pair() -> int:
    return free_port(pair=True)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


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

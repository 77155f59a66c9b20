"""Whether a port can be listened on: checked before starting a server that could only exit."""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])

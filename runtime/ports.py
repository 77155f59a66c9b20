"""Whether a port can be listened on: checked before starting a server that could only exit."""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)


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


def web_port(wanted: int) -> int:
    """A worker's metrics port: `wanted` if free, else any free one (N workers may share a machine);
    0 keeps the web server off."""
    if wanted <= 0 or port_free("0.0.0.0", wanted):
        return wanted
    port = any_free_port("0.0.0.0")
    log.warning("port %d is taken (another worker?); serving /metrics on port %d", wanted, port)
    return port

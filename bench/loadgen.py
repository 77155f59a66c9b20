"""A lean HTTP/1.1 load generator for the benches: signed requests built before the clock starts.

`coex simulate` posts through aiohttp, which is right for a tool pointed at any deployment (TLS,
proxies, any response framing) but costs ~300 us of CPU per POST: 13 s of the two cores in a
million-message end-to-end run, taken from the pipeline being measured. In production the platform
sends from its own machines. Here each connection writes a prepared request and reads the ingest's
answer (status line, headers, Content-Length body) with nothing else on the way; retries as the
platform does on 5xx, 408, 429 and a lost connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from coex.simulator.wire import SIGNATURE_HEADER, sign

RETRYABLE = frozenset({408, 429})
MAX_ATTEMPTS = 30


@dataclass(slots=True)
class LoadStats:
    posts: int = 0
    retries: int = 0
    failed: int = 0
    seconds: float = 0.0


def prepare(url: str, secret: bytes, bodies: Iterable[bytes]) -> list[bytes]:
    """Each body as a complete signed POST request."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"User-Agent: facebookexternalua\r\n"
    ).encode()
    out = []
    for body in bodies:
        tail = f"{SIGNATURE_HEADER}: {sign(secret, body)}\r\nContent-Length: {len(body)}\r\n\r\n"
        out.append(b"".join((head, tail.encode(), body)))
    return out


async def post_prepared(url: str, requests: list[bytes], concurrency: int) -> LoadStats:
    """Send every request over `concurrency` keep-alive connections; each waits for its answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stats = LoadStats()
    pending: Iterator[bytes] = iter(requests)
    start = time.monotonic()

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for request in pending:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    writer.write(request)
                    status = await _answer(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0  # the connection broke: open another
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                if 200 <= status < 300:
                    stats.posts += 1
                    break
                if status and status < 500 and status not in RETRYABLE:
                    stats.failed += 1
                    break
                stats.retries += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                stats.failed += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    stats.seconds = time.monotonic() - start
    return stats


async def _answer(reader: asyncio.StreamReader) -> int:
    """The status of one response, its body read off the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked answers are not expected from the ingest")
    if length:
        await reader.readexactly(length)
    return status

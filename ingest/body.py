"""Reading a request body under a size limit, never holding more than the limit in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ingest.errors import NotAnEnvelope, TooLarge


def declared_length(header: str | None, limit: int) -> int | None:
    """The Content-Length, or None when absent (chunked). Raises TooLarge over `limit`."""
    if header is None:
        return None
    if not header.isdigit():
        raise NotAnEnvelope("Content-Length is not a number")
    length = int(header)
    if length > limit:
        raise TooLarge(f"Content-Length {length} is over the limit of {limit} bytes")
    return length


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Join the body's chunks, stopping with TooLarge as soon as they pass `limit`.

    Counted whatever Content-Length said, so a lying header or a chunked body cannot get
    more than `limit` bytes into memory.
    """
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is over the limit of {limit} bytes")
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)

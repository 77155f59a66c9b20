"""The body reader: Content-Length checked first, chunks counted, nothing past the limit kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.body import declared_length, read_limited
from ingest.errors import NotAnEnvelope, TooLarge


async def chunks_of(parts: list[bytes], consumed: list[int] | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        if consumed is not None:
            consumed.append(len(part))
        yield part


def test_declared_length() -> None:
    assert declared_length(None, 10) is None
    assert declared_length("10", 10) == 10
    with pytest.raises(TooLarge):
        declared_length("11", 10)
    for bad in ("", "-1", "ten", "1e3"):
        with pytest.raises(NotAnEnvelope):
            declared_length(bad, 10)


@given(st.lists(st.binary(max_size=64), max_size=20), st.integers(min_value=0, max_value=800))
async def test_read_limited_is_the_join_or_too_large(parts: list[bytes], limit: int) -> None:
    whole = b"".join(parts)
    if len(whole) <= limit:
        assert await read_limited(chunks_of(parts), limit) == whole
    else:
        with pytest.raises(TooLarge):
            await read_limited(chunks_of(parts), limit)


async def test_reading_stops_at_the_limit() -> None:
    consumed: list[int] = []
    with pytest.raises(TooLarge):
        await read_limited(chunks_of([b"x" * 100] * 1000, consumed), 250)
    assert len(consumed) == 3

"""The read-ahead: large records go to the helper processes to be parsed as soon as they are read
(streams/helper.py), a few records ahead, while the agent applies records strictly in their order."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from faust.types import EventT

from streams.helper import HELPER_PROCESSES, Helper, Pending

# Large records given to the helpers before the agent applies the first of them: enough to keep them
# busy while the agent works, few enough that a rebalance finds little read ahead.
AHEAD_LARGE = 2 * HELPER_PROCESSES
AHEAD_EVENTS = 512  # and records read ahead at most, small ones included


def event_value(event: EventT[bytes]) -> bytes:
    value = event.message.value
    return value if isinstance(value, bytes) else bytes(value or b"")


async def apply_in_order(
    events: AsyncIterator[EventT[bytes]],
    queue: asyncio.Queue[Any],
    helper: Helper,
    *,
    is_tick: Callable[[EventT[bytes]], bool],
    apply: Callable[[EventT[bytes], Pending | None], Awaitable[None]],
    quiet: Callable[[float | None], None],
) -> None:
    """Apply each of `events` in order, the helper's work on it first; `quiet` hears when the agent
    ran out of records to apply (a time) and when records came again (None)."""
    # Records read ahead, each with the helper's work on it when it has some.
    ahead: collections.deque[tuple[EventT[bytes], Pending | None]] = collections.deque()
    large = 0
    async for event in events:
        quiet(None)
        pending = None if is_tick(event) else helper.submit(event_value(event))
        ahead.append((event, pending))
        large += pending is not None
        # Apply the oldest once the helper has enough to do, or nothing more is there to read.
        while ahead and (ahead[0][1] is None or large >= AHEAD_LARGE or len(ahead) >= AHEAD_EVENTS or queue.empty()):
            head, pending = ahead.popleft()
            large -= pending is not None
            await apply(head, pending)
        if not ahead:
            quiet(time.monotonic())

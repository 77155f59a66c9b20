"""How fetched records reach the agent: four changes to faust's hand-over, installed by
streams/patches.py (figures in bench/RESULTS.md).

1. No per-record race when nothing can wait. faust's fetch loop hands each record over racing it
   against a flow suspension (`wait_first`: four tasks per record, costly for the many small media
   follow-ups of an import). When the flow runs and the agent's queue has room nothing can wait, so
   the record goes in directly; a full queue is waited out first. The queue is bounded by its
   records' bytes as well as their number, so thousands of small records queue while MB chunks
   stay bounded.
2. A full queue holds the fetch loop back instead of idling it: faust would take the partition
   out of the fetch, and a fetch already waiting for the others then waits its whole second.
3. Records only of the partitions active when they are taken: aiokafka reads an empty set of
   partitions as "every partition", and a fetch waiting across a rebalance that paused everything
   moved fetch positions past records faust then dropped (recovery waited for them for good).
4. Fetches that wait for data (`FETCH_MIN_BYTES`, `FETCH_MAX_WAIT_MS`): fetching each produce batch
   on its own as it lands loaded the broker and slowed the ingest's answers.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

# How often a hand-over waiting for room in the agent's queue looks again (the agent takes a few
# records per millisecond; a rebalance that suspends the flow ends the wait at the next look).
ROOM_POLL_S = 0.005
# The agent's queue: this many events at most (faust's stream_buffer_maxsize) ...
QUEUE_EVENTS = 4096
# ... and no further record once the values queued weigh this much (one record always fits).
QUEUE_BYTES = 64 * 1024 * 1024
FETCH_MIN_BYTES = 1024 * 1024
FETCH_MAX_WAIT_MS = 200  # faust's is 1,500 with aiokafka's minimum of one byte


class QueueWeight:
    """The bytes of the record values in a queue, counted as its items go in and out."""

    __slots__ = ("_items", "bytes", "limit")

    def __init__(self, items: Collection[Any], limit: int) -> None:
        self.bytes = 0
        self.limit = limit
        self._items = items

    def over(self, *, half: bool = False) -> bool:
        if not self._items:
            self.bytes = 0  # faust clears the queue on a rebalance without taking its items
            return False
        return self.bytes >= (self.limit // 2 if half else self.limit)


class ActiveNow:
    """faust's live set of active partitions as aiokafka's `fetched_records` asks it, which it
    does while the fetch waits: empty, it is still a filter that lets no partition through."""

    __slots__ = ("partitions",)

    def __init__(self, partitions: Collection[Any]) -> None:
        self.partitions = partitions

    def __contains__(self, tp: object) -> bool:
        return tp in self.partitions

    def __bool__(self) -> bool:
        return True

"""The seek at the end of a rebalance: a partition the broker has no committed offset for starts again
from its earliest offset, however many seeks ran before it in the same rebalance."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.patches import seek_before_fetching

NEVER = TP("p.account_update", 1)  # nothing committed for it yet
COMMITTED = TP("p.history", 0)


class Consumer:
    """The pieces of faust's consumer the seek uses; the fetch position moves when told to."""

    def __init__(self) -> None:
        self._read_offset: dict[Any, Any] = {}
        self._committed_offset: dict[Any, Any] = {}
        self.paused: set[Any] = set()
        self.seeks: list[dict[Any, int]] = []

    def assignment(self) -> set[Any]:
        return {NEVER, COMMITTED}

    def pause_partitions(self, tps: Any) -> None:
        self.paused |= set(tps)

    def resume_partitions(self, tps: Any) -> None:
        self.paused -= set(tps)

    async def seek_to_committed(self) -> dict[Any, Any]:
        return {NEVER: None, COMMITTED: 7}

    async def perform_seek(self) -> None:  # faust's, which the worker replaces
        committed = await self.seek_to_committed()
        self._read_offset.update(committed)
        self._committed_offset.update({tp: o for tp, o in committed.items() if o is not None})

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, 0)

    async def seek_wait(self, offsets: dict[Any, int]) -> None:
        self.seeks.append(dict(offsets))


def test_every_seek_of_a_rebalance_starts_a_never_committed_partition_from_the_beginning() -> None:
    async def go() -> None:
        consumer = Consumer()
        ended: list[bool] = []
        app = SimpleNamespace(consumer=consumer, rebalancing=True, on_rebalance_end=lambda: ended.append(True))
        seek_before_fetching(app, [NEVER.topic, COMMITTED.topic])
        # faust's fetcher seeks when a fetch returns with the flow stopped, recovery seeks at its end;
        # in between, the fetcher may move a paused partition past records it then drops.
        await consumer.perform_seek()
        await consumer.perform_seek()
        assert consumer.seeks == [{NEVER: 0}, {NEVER: 0}]
        assert consumer._committed_offset == {NEVER: 0, COMMITTED: 7}
        assert consumer.paused == {NEVER, COMMITTED}
        app.on_rebalance_end()
        assert consumer.paused == set() and ended == [True]

    asyncio.run(go())

"""The direct hand-over of fetched records: taken only when nothing in it can wait."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from streams.delivery import deliver_without_race, fetch_while_full


class Harness:
    """faust's consumer/app pieces the hand-over looks at, with real asyncio primitives."""

    def __init__(self) -> None:
        self.raced: list[int] = []
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=2)
        self.suspend_flow = asyncio.Event()

        async def race(*coros: Any, timeout: Any = None) -> str:
            self.raced.append(len(coros))
            for coro in coros:
                coro.close()
            return "raced"

        self.consumer = SimpleNamespace(
            wait_first=race, suspend_flow=self.suspend_flow, _stopped=asyncio.Event(), _crashed=asyncio.Event()
        )
        self.flow = SimpleNamespace(active=True)
        self.buffer = SimpleNamespace(size=0, max_messages=100)
        self.lock = asyncio.Lock()
        self.app = SimpleNamespace(
            consumer=self.consumer,
            flow_control=SimpleNamespace(is_active=lambda: self.flow.active),
            producer=SimpleNamespace(buffer=self.buffer),
            topics=SimpleNamespace(_tp_to_callback_lock=self.lock),
        )
        deliver_without_race(self.app, self.queue)

    async def hand_over(self, record: str) -> Any:
        return await self.consumer.wait_first(self.queue.put(record), self.suspend_flow.wait())


def run(test: Any) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), 5)  # a hand-over that waits where it should race hangs

    asyncio.run(bounded())


def test_record_handed_over_directly_when_nothing_can_wait() -> None:
    async def go() -> None:
        h = Harness()
        assert await h.hand_over("a") is None
        assert h.queue.get_nowait() == "a"
        assert h.raced == []

    run(go)


def test_paused_flow_full_buffer_or_locked_conductor_race_as_faust_does() -> None:
    async def go() -> None:
        h = Harness()
        h.flow.active = False
        assert await h.hand_over("d") == "raced"
        h.flow.active = True
        h.buffer.size = 101
        assert await h.hand_over("e") == "raced"
        h.buffer.size = 0
        h.suspend_flow.set()
        assert await h.hand_over("f") == "raced"
        h.suspend_flow.clear()
        async with h.lock:
            assert await h.hand_over("g") == "raced"
        assert await h.hand_over("h") is None
        assert h.queue.get_nowait() == "h"
        assert h.raced == [2, 2, 2, 2]

    run(go)


async def hand_over_to_a_full_queue(h: Harness) -> asyncio.Future[Any]:
    """Fills the queue with "a", "b", then starts handing "c" over."""
    await h.hand_over("a")
    await h.hand_over("b")
    return asyncio.ensure_future(h.hand_over("c"))


def test_a_full_queue_is_waited_out_then_handed_over_directly() -> None:
    async def go() -> None:
        h = Harness()
        waiting = await hand_over_to_a_full_queue(h)
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the queue is full: the hand-over waits for room
        assert h.queue.get_nowait() == "a"
        assert await waiting is None
        assert [h.queue.get_nowait() for _ in range(2)] == ["b", "c"]
        assert h.raced == []

    run(go)


def test_a_flow_suspended_while_waiting_for_room_races_as_faust_does() -> None:
    async def go() -> None:
        h = Harness()
        waiting = await hand_over_to_a_full_queue(h)
        await asyncio.sleep(0.02)
        h.suspend_flow.set()
        assert await waiting == "raced"
        assert h.raced == [2]

    run(go)


def test_other_waits_on_the_consumer_are_left_to_faust() -> None:
    async def go() -> None:
        h = Harness()
        assert await h.consumer.wait_first(asyncio.sleep(0)) == "raced"
        assert await h.consumer.wait_first(h.queue.put("x"), asyncio.sleep(0)) == "raced"
        assert await h.consumer.wait_first(h.queue.put("y"), h.suspend_flow.wait(), timeout=1) == "raced"
        assert h.queue.empty()

    run(go)


def test_installed_once() -> None:
    async def go() -> None:
        h = Harness()
        installed = h.consumer.wait_first
        deliver_without_race(h.app, h.queue)
        assert h.consumer.wait_first is installed

    run(go)


def test_a_full_queue_leaves_its_partition_in_the_fetch() -> None:
    """faust's own consumer (no broker needed): without the change it drops the partition."""
    tp = TP("history", 0)
    for keep in (False, True):
        app = faust.App(f"delivery-{keep}", broker="kafka://127.0.0.1:1", store="memory://")
        consumer: Any = app.consumer
        consumer._set_active_tps({tp})
        if keep:
            fetch_while_full(app)
        consumer.on_buffer_full(tp)
        assert (tp in consumer._get_active_partitions()) is keep

"""The direct hand-over of fetched records: taken only when nothing in it can wait."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from streams.delivery import QUEUE_BYTES
from streams.patches import deliver_without_race, fetch_while_full, weigh


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


def _event(size: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(value=b"x" * size))


def test_the_agents_queue_is_full_at_its_bytes_before_its_count() -> None:
    async def go() -> None:
        queue: Any = ThrowableQueue(
            maxsize=100, flow_control=FlowControlEvent(initially_suspended=False)
        )  # the kind of faust's channel queues
        weight = weigh(queue, 100)
        queue.put_nowait(_event(60))
        assert not queue.full()
        queue.force_put_nowait(_event(60))  # faust's own put when not full
        assert queue.full() and queue.qsize() == 2 and weight.bytes == 120
        third = asyncio.ensure_future(queue.put(_event(10)))
        await asyncio.sleep(0.01)
        assert not third.done()  # waits for room by bytes, like a put on a queue full by count
        await queue.get()
        await asyncio.wait_for(third, 1)
        assert weight.bytes == 70 and not queue.full()
        assert weigh(queue, 100) is weight  # once

    run(go)


def test_a_record_bigger_than_the_queues_bytes_still_goes_in_alone() -> None:
    async def go() -> None:
        queue: Any = ThrowableQueue(maxsize=100, flow_control=FlowControlEvent(initially_suspended=False))
        weigh(queue, 100)
        await asyncio.wait_for(queue.put(_event(500)), 1)
        assert queue.full()
        queue.get_nowait()
        assert not queue.full()

    run(go)


def test_a_queue_cleared_by_a_rebalance_weighs_nothing() -> None:
    async def go() -> None:
        queue: Any = ThrowableQueue(maxsize=100, flow_control=FlowControlEvent(initially_suspended=False))
        weight = weigh(queue, 100)
        queue.put_nowait(_event(150))
        queue.clear()  # faust empties the queues on a rebalance without taking their items
        assert not queue.full() and weight.bytes == 0
        await asyncio.wait_for(queue.put(_event(10)), 1)
        assert weight.bytes == 10

    run(go)


def test_the_hand_over_waits_for_half_the_bytes_to_be_taken() -> None:
    async def go() -> None:
        h = Harness()  # its queue takes two events, and QUEUE_BYTES
        big: Any = SimpleNamespace(message=SimpleNamespace(value=b"x" * QUEUE_BYTES))
        h.queue.put_nowait(big)
        handing = asyncio.ensure_future(h.hand_over(_event(1)))
        await asyncio.sleep(0.02)
        assert not handing.done()  # full by bytes with one event of two
        h.queue.get_nowait()
        assert await asyncio.wait_for(handing, 1) is None
        assert h.raced == []  # went in directly once there was room

    run(go)

"""Fetched records handed to the agent without faust's per-record race when nothing can wait.

faust's fetch loop hands each record over with `consumer.wait_first(deliver(record),
suspend_flow.wait())`: four tasks and an asyncio.wait per record, so that a hand-over blocked on a
full queue, paused flow or a full producer buffer is dropped when a rebalance suspends the flow.
In a history import most records are one-message media follow-ups, and that race was a tenth of
the worker's main thread. When the flow runs, the producer buffer is under its limit, the
conductor is unlocked and the agent's queue has room, the hand-over completes before any other
task runs: there is nothing to race, and the record is handed over directly. Otherwise faust's
race runs as before.
"""

from __future__ import annotations

from typing import Any


def deliver_without_race(app: Any, queue: Any) -> None:
    """Install the direct hand-over on `app`'s consumer (once); `queue` is the agent's."""
    consumer: Any = app.consumer
    if getattr(consumer, "_coex_direct_delivery", False):
        return
    race = consumer.wait_first
    suspended, stopped, crashed = consumer.suspend_flow.is_set, consumer._stopped.is_set, consumer._crashed.is_set
    flow_active = app.flow_control.is_active
    buffer = app.producer.buffer
    conductor_lock = app.topics._tp_to_callback_lock

    async def wait_first(*coros: Any, timeout: Any = None) -> Any:
        if (
            len(coros) == 2
            and timeout is None
            and getattr(coros[1], "__qualname__", "") == "Event.wait"
            and not (suspended() or stopped() or crashed())
            and flow_active()
            and buffer.size <= buffer.max_messages
            and not conductor_lock.locked()
            and not queue.full()
        ):
            coros[1].close()
            await coros[0]
            return None  # faust's fetch loop ignores what wait_first returns
        return await race(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._coex_direct_delivery = True

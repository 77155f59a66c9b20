"""The worker's watchdog decision (streams/stall.py)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from streams.stall import IN_TRANSITION_FACTOR, await_chain, stalled

LIMIT = 300.0


def test_records_waiting_and_nothing_handled_for_the_limit_is_a_stall() -> None:
    assert stalled(idle_s=LIMIT, timeout_s=LIMIT, waiting=True, sink_failing=False, in_transition=False)
    assert not stalled(idle_s=LIMIT - 1, timeout_s=LIMIT, waiting=True, sink_failing=False, in_transition=False)


def test_nothing_waiting_a_clickhouse_outage_or_a_disabled_watchdog_is_no_stall() -> None:
    assert not stalled(idle_s=1e9, timeout_s=LIMIT, waiting=False, sink_failing=False, in_transition=False)
    assert not stalled(idle_s=1e9, timeout_s=LIMIT, waiting=True, sink_failing=True, in_transition=False)
    assert not stalled(idle_s=1e9, timeout_s=0, waiting=True, sink_failing=False, in_transition=False)


def test_a_rebalance_or_recovery_gets_longer() -> None:
    long = LIMIT * IN_TRANSITION_FACTOR
    assert not stalled(idle_s=long - 1, timeout_s=LIMIT, waiting=True, sink_failing=False, in_transition=True)
    assert stalled(idle_s=long, timeout_s=LIMIT, waiting=True, sink_failing=False, in_transition=True)


@given(st.floats(0, 1e6), st.floats(0, 1e4), st.booleans(), st.booleans(), st.booleans())
def test_a_stall_needs_waiting_records_and_a_working_sink(
    idle: float, timeout: float, waiting: bool, failing: bool, transition: bool
) -> None:
    if stalled(idle_s=idle, timeout_s=timeout, waiting=waiting, sink_failing=failing, in_transition=transition):
        assert waiting and not failing and timeout > 0 and idle >= timeout


def test_the_await_chain_names_where_a_task_waits() -> None:
    async def inner(gate: asyncio.Event) -> None:
        await gate.wait()

    async def outer(gate: asyncio.Event) -> None:
        await inner(gate)

    async def go() -> list[str]:
        gate = asyncio.Event()
        task = asyncio.create_task(outer(gate))
        await asyncio.sleep(0)
        chain = await_chain(task.get_coro())
        gate.set()
        await task
        return chain

    chain = asyncio.run(go())
    assert [line.rsplit(" ", 1)[1] for line in chain[:3]] == ["outer", "inner", "wait"]

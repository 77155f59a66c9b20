"""The worker's watchdog decision (streams/stall.py)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from streams.stall import IN_TRANSITION_FACTOR, Verdict, Watch, await_chain, sink_excuses, stalled

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


def check(watch: Watch, now: float, *, in_transition: bool = False, failing: bool = False) -> Verdict:
    return watch.check(now, timeout_s=LIMIT, waiting=True, sink_failing=failing, in_transition=in_transition)


def test_a_worker_that_starts_slowly_has_a_whole_timeout_once_it_has_joined() -> None:
    watch = Watch(idle_since=0.0)
    assert check(watch, LIMIT * 2, in_transition=True) is Verdict.FINE  # joining, recovering
    assert check(watch, LIMIT * 2.5) is Verdict.FINE  # ready: the clock starts here
    assert check(watch, LIMIT * 3.5 - 1) is Verdict.FINE
    assert check(watch, LIMIT * 3.5) is Verdict.PROBE
    assert watch.probed(LIMIT * 3.5, answered=True) is Verdict.STUCK


def test_an_outage_is_waited_out_and_kafkas_return_gives_a_whole_timeout() -> None:
    watch = Watch(idle_since=0.0, in_transition=False)
    assert check(watch, LIMIT) is Verdict.PROBE
    assert watch.probed(LIMIT + 10, answered=False) is Verdict.AWAY
    assert check(watch, 2 * LIMIT + 10) is Verdict.PROBE
    assert watch.probed(2 * LIMIT + 20, answered=True) is Verdict.BACK  # the consumer reconnects first
    assert check(watch, 3 * LIMIT + 19) is Verdict.FINE
    assert check(watch, 3 * LIMIT + 20) is Verdict.PROBE
    assert watch.probed(3 * LIMIT + 20, answered=True) is Verdict.STUCK


def test_the_group_rejoined_after_an_outage_gives_a_whole_timeout() -> None:
    watch = Watch(idle_since=0.0, in_transition=False)
    assert check(watch, LIMIT * IN_TRANSITION_FACTOR - 1, in_transition=True) is Verdict.FINE  # coordinator lost
    assert check(watch, LIMIT * IN_TRANSITION_FACTOR) is Verdict.FINE  # rejoined
    assert check(watch, LIMIT * (IN_TRANSITION_FACTOR + 1)) is Verdict.PROBE


def test_a_record_handled_while_the_probe_waits_is_no_stall() -> None:
    watch = Watch(idle_since=0.0, in_transition=False)
    assert check(watch, LIMIT) is Verdict.PROBE
    watch.idle_since = LIMIT + 1
    assert watch.probed(LIMIT + 2, answered=True) is Verdict.FINE


def test_clickhouse_failing_restarts_the_clock() -> None:
    watch = Watch(idle_since=0.0, in_transition=False)
    assert check(watch, LIMIT * 5, failing=True) is Verdict.FINE
    assert check(watch, LIMIT * 6 - 1) is Verdict.FINE
    assert check(watch, LIMIT * 6) is Verdict.PROBE


@given(st.lists(st.tuples(st.floats(0, LIMIT), st.booleans(), st.booleans(), st.sampled_from([None, True, False]))))
def test_stuck_only_after_a_whole_timeout_with_kafka_answering_and_no_excuse(
    steps: list[tuple[float, bool, bool, bool | None]],
) -> None:
    watch, now, excused, was_transition = Watch(idle_since=0.0), 0.0, 0.0, True  # excused: the clock's start
    for step, transition, failing, answers in steps:
        now += step
        verdict = check(watch, now, in_transition=transition, failing=failing)
        if (was_transition and not transition) or failing:
            excused = now
        was_transition = transition
        if verdict is Verdict.PROBE and answers is not None:
            after = watch.probed(now, answered=answers)
            if after is Verdict.STUCK:
                assert now - excused >= LIMIT * (IN_TRANSITION_FACTOR if transition else 1)
            if after in (Verdict.AWAY, Verdict.BACK):
                excused = now


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


def test_clickhouse_failing_excuses_an_idle_worker_only_until_it_is_an_alert() -> None:
    alert = 300.0
    assert not sink_excuses(0.0, alert)  # writes pass
    assert sink_excuses(0.1, alert)
    assert sink_excuses(alert - 0.1, alert)
    assert not sink_excuses(alert, alert)
    # Past the alert the stall timeout runs from the last excuse: the worker leaves to start afresh.
    watch = Watch(idle_since=0.0, in_transition=False)
    for now in range(0, int(alert), 10):
        assert check(watch, float(now), failing=sink_excuses(float(now), alert)) is Verdict.FINE
    assert check(watch, alert + LIMIT - 20, failing=sink_excuses(alert + LIMIT - 20, alert)) is Verdict.FINE
    assert check(watch, alert + LIMIT, failing=sink_excuses(alert + LIMIT, alert)) is Verdict.PROBE
    assert watch.probed(alert + LIMIT, answered=True) is Verdict.STUCK

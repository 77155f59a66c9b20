"""Repeated warnings held back (runtime/logs.py)."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st
from mode.utils.logging import ExtensionFormatter

from runtime.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.ERROR, name: str = "aiokafka.client", *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flood_of_one_error_lets_one_through_per_window_and_counts_the_rest() -> None:
    clock = Clock()
    f = RepeatFilter(window_s=10, clock=clock)
    passed = []
    for i in range(1000):
        clock.now = i * 0.01  # 100 a second for 10 s
        r = record("Unable connect to node with id %s: %s", logging.ERROR, "aiokafka.client", 1, "refused")
        if f.filter(r):
            passed.append(r.getMessage())
    clock.now = 10.5
    r = record("Unable connect to node with id %s: %s", logging.ERROR, "aiokafka.client", 1, "refused")
    assert f.filter(r)
    assert passed == ["Unable connect to node with id 1: refused"]
    assert r.getMessage() == "Unable connect to node with id 1: refused (and 999 times more in the 10 s before)"


def test_the_counted_message_formats_through_the_workers_formatter() -> None:
    """faust's worker logs through mode's formatter, which reads a record's arguments again."""
    clock = Clock()
    f = RepeatFilter(window_s=10, clock=clock)
    for now in (0.0, 1.0, 11.0):
        clock.now = now
        r = record("Unable to update metadata from %s", logging.ERROR, "aiokafka.client", [1])
        passed = f.filter(r)
    assert passed
    text = ExtensionFormatter(fmt="%(message)s").format(r)
    assert text.endswith("Unable to update metadata from [1] (and 1 times more in the 11 s before)")


def test_other_messages_and_info_records_are_not_held_back() -> None:
    f = RepeatFilter(window_s=10, clock=Clock())
    assert f.filter(record("node 1 down"))
    assert f.filter(record("node 2 down"))
    assert f.filter(record("node 1 down", logging.WARNING))
    assert f.filter(record("node 1 down", name="streams.app"))
    assert all(f.filter(record("tick", logging.INFO)) for _ in range(5))


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 5)), max_size=200))
def test_each_message_passes_at_most_once_per_window(events: list[tuple[str, float]]) -> None:
    clock = Clock()
    f = RepeatFilter(window_s=10, clock=clock)
    last: dict[str, float] = {}
    for msg, step in events:
        clock.now += step
        if f.filter(record(msg)):
            assert msg not in last or clock.now - last[msg] >= 10
            last[msg] = clock.now
        else:
            assert msg in last and clock.now - last[msg] < 10

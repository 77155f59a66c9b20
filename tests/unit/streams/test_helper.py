"""The helper processes that parse large records ahead of the agent (real processes, no Kafka)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from schemas.routing import split_delivery
from streams import metrics
from streams.helper import Helper
from streams.prepare import Prepared, prepare
from tests.unit.streams.test_processor import build_scenario, records

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def helper() -> Iterator[Helper]:
    helper = Helper(min_bytes=500)
    helper.start()
    try:
        yield helper
    finally:
        helper.stop()


def _history_value() -> bytes:
    (_, _, value), *_ = records(build_scenario().bodies)
    assert len(value) >= 500
    return value


def _large_value(messages: int = 20_000) -> bytes:
    """A history chunk that takes a helper a good part of a second."""
    thread = [
        {"from": "16505551234", "id": f"wamid.{i}", "timestamp": "1739230000", "type": "text", "text": {"body": "hi"}}
        for i in range(messages)
    ]
    chunk = {"metadata": {"phase": 0, "chunk_order": 0, "progress": 1}, "threads": [{"id": "1650", "messages": thread}]}
    value = {"metadata": {"display_phone_number": "1555", "phone_number_id": "1065"}, "history": [chunk]}
    body = orjson.dumps({"entry": [{"id": "1022", "changes": [{"field": "history", "value": value}]}]})
    (record,) = split_delivery(body, "delivery", 1_700_000_000.0)
    return record.value


def _in_helper(helper: Helper, value: bytes) -> Prepared:
    pending = helper.submit(value)
    assert pending is not None
    return asyncio.run(helper.result(value, pending))


def test_a_large_record_is_prepared_in_the_helper_as_it_would_be_in_place(helper: Helper) -> None:
    value = _history_value()
    before = metrics.PREPARED_AHEAD._value.get()
    assert _in_helper(helper, value) == prepare(value, encode=True)
    assert metrics.PREPARED_AHEAD._value.get() == before + 1
    small = b'{"change": {}}'
    assert helper.submit(small) is None
    assert asyncio.run(helper.result(small, None)) == prepare(small)


def _kill_helpers() -> None:
    for child in multiprocessing.active_children():
        os.kill(child.pid or 0, signal.SIGKILL)


def test_a_helper_that_dies_costs_nothing_but_time(helper: Helper) -> None:
    value = _history_value()
    large = _large_value()
    _in_helper(helper, value)  # its processes run
    restarts = metrics.HELPER_RESTARTS._value.get()
    # Dying while a record waits for it (thousands of messages: it is still parsing): parsed in place.
    pending = helper.submit(large)
    assert pending is not None
    _kill_helpers()
    assert asyncio.run(helper.result(large, pending)) == prepare(large)
    assert metrics.HELPER_RESTARTS._value.get() == restarts + 1
    _in_helper(helper, value)
    _kill_helpers()
    time.sleep(0.5)
    # Found dead at the hand-over (or while waiting): parsed in place, the same as ever ...
    pending = helper.submit(value)
    assert asyncio.run(helper.result(value, pending)) == prepare(value, encode=pending is not None)
    assert metrics.HELPER_RESTARTS._value.get() == restarts + 2
    # ... then by a new helper.
    ahead = metrics.PREPARED_AHEAD._value.get()
    assert _in_helper(helper, value) == prepare(value, encode=True)
    assert metrics.PREPARED_AHEAD._value.get() == ahead + 1


def test_off_with_a_minimum_of_zero() -> None:
    helper = Helper(min_bytes=0)
    helper.start()
    assert helper.submit(_history_value()) is None
    assert not multiprocessing.active_children()


def test_the_helpers_end_with_a_worker_that_is_killed() -> None:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import multiprocessing, time
                from streams.helper import Helper
                if __name__ == "__main__":
                    Helper(min_bytes=1).start()
                    print(*[child.pid for child in multiprocessing.active_children()], flush=True)
                    time.sleep(60)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert worker.stdout is not None
    pids = [int(pid) for pid in worker.stdout.readline().split()]
    assert pids
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until its parent's parent reaps it: it runs no more.
    status = Path(f"/proc/{pid}/stat")
    return not status.exists() or status.read_text().rsplit(")", 1)[1].split()[0] != "Z"

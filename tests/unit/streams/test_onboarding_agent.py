"""The onboarding agent's rules: which outcomes are tried again, acks in offset order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from graph.errors import GraphError
from onboarding import requests
from onboarding.sequence import Outcome, Request, Step, fresh
from runtime.settings import Settings
from streams.onboarding_agent import OnboardingAgent, Verdict, verdict


def _outcome(step: Step, ok: bool = False) -> Outcome:
    return Outcome(fresh(Request("w", "1"), 0)._replace(step=step), ok, "why")


@pytest.mark.parametrize(
    ("outcome", "failure", "expected"),
    [
        (_outcome(Step.COMPLETE, ok=True), None, Verdict.DONE),
        (_outcome(Step.REFUSED), None, Verdict.DONE),
        (_outcome(Step.EXPIRED), None, Verdict.DONE),
        (_outcome(Step.FAILED), GraphError.local("5xx after retries", status=503, transient=True), Verdict.RETRY),
        (_outcome(Step.FAILED), GraphError.local("answer lost", outcome_unknown=True), Verdict.RETRY),
        (_outcome(Step.FAILED), GraphError.local("(#200) permission", status=403), Verdict.DONE),
        (_outcome(Step.FAILED), LookupError("no token"), Verdict.DONE),
        (_outcome(Step.FAILED), TimeoutError("ClickHouse"), Verdict.RETRY),
    ],
)
def test_verdict(outcome: Outcome, failure: BaseException | None, expected: Verdict) -> None:
    assert verdict(outcome, failure) is expected


@dataclass(frozen=True)
class _Message:
    tp: str
    offset: int


@dataclass(frozen=True)
class _Event:
    message: _Message


@dataclass
class _Stream:
    acked: list[int] = field(default_factory=list)

    async def ack(self, event: Any) -> None:
        self.acked.append(event.message.offset)


async def test_acks_wait_for_the_records_before_them() -> None:
    agent = OnboardingAgent(Settings(_env_file=None), lambda: None)  # type: ignore[call-arg, arg-type, return-value]
    stream = _Stream()
    entries = [agent._track(_Event(_Message("t-0", offset))) for offset in (5, 6, 7)]  # type: ignore[arg-type]
    await agent._release(entries[1], stream)
    await agent._release(entries[2], stream)
    assert stream.acked == []  # 5 still runs: faust would commit past it
    await agent._release(entries[0], stream)
    assert stream.acked == [5, 6, 7]


async def test_records_read_again_after_a_rebalance_start_a_new_order() -> None:
    agent = OnboardingAgent(Settings(_env_file=None), lambda: None)  # type: ignore[call-arg, arg-type, return-value]
    stream = _Stream()
    old = agent._track(_Event(_Message("t-0", 5)))  # type: ignore[arg-type]
    again = agent._track(_Event(_Message("t-0", 5)))  # type: ignore[arg-type]
    await agent._release(again, stream)
    await agent._release(old, stream)  # the older read's: its ack would be refused anyway
    assert stream.acked == [5]
    await asyncio.sleep(0)


SETTINGS = Settings(_env_file=None, app_secret=SecretStr("s"))  # type: ignore[call-arg]


def _request_event(offset: int) -> _Event:
    value = requests.encode(
        Request("w", "1", token=SecretStr("t")), int(time.time()), requests.derive_key(SecretStr("s"))
    )
    return _Event(_RequestMessage("t-0", offset, value))


@dataclass(frozen=True)
class _RequestMessage(_Message):
    value: bytes = b""
    topic: str = "onboarding_requests"
    partition: int = 0
    key: bytes = b"1"


async def _started(agent: OnboardingAgent, event: _Event, stream: _Stream) -> asyncio.Task[None]:
    task = asyncio.ensure_future(agent.handle(event, stream))  # type: ignore[arg-type]
    agent._tasks.add(task)
    task.add_done_callback(agent._tasks.discard)
    await asyncio.sleep(0.05)
    return task


async def test_a_stop_lets_a_run_under_way_end_and_ack() -> None:
    agent = OnboardingAgent(SETTINGS, lambda: None)  # type: ignore[arg-type, return-value]

    async def run(request: Request, exchanged: list[SecretStr]) -> tuple[Verdict, int]:
        await asyncio.sleep(0.3)  # a Graph call
        return Verdict.DONE, 0

    agent._once = run  # type: ignore[method-assign]
    stream = _Stream()
    await _started(agent, _request_event(3), stream)
    await agent.stop()
    assert stream.acked == [3]


async def test_a_stop_cancels_an_onboarding_waiting_to_try_again_unacked() -> None:
    agent = OnboardingAgent(SETTINGS, lambda: None, retry_first_s=600)  # type: ignore[arg-type, return-value]

    async def run(request: Request, exchanged: list[SecretStr]) -> tuple[Verdict, int]:
        return Verdict.RETRY, int(time.time()) + 3600

    agent._once = run  # type: ignore[method-assign]
    stream = _Stream()
    task = await _started(agent, _request_event(3), stream)
    began = time.monotonic()
    await agent.stop()
    assert time.monotonic() - began < 2
    assert task.cancelled() and stream.acked == []


async def test_a_partition_given_back_past_its_old_records_starts_a_new_order() -> None:
    agent = OnboardingAgent(Settings(_env_file=None), lambda: None)  # type: ignore[call-arg, arg-type, return-value]
    stream = _Stream()
    agent._track(_Event(_Message("t-0", 5)))  # type: ignore[arg-type]  # still running, of the older read
    later = agent._track(_Event(_Message("t-0", 10)))  # type: ignore[arg-type]  # another worker did 5..9
    await agent._release(later, stream)
    assert stream.acked == [10]

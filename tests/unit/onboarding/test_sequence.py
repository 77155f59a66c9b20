"""The onboarding sequence: order of calls, each sync at most once, resumed where it stopped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from graph.errors import GraphError
from onboarding.sequence import WINDOW_S, Outcome, Request, Step, run
from schemas.rows import OnboardingRow

T0 = 1_780_000_000
REQUEST = Request("waba-1", "pn-1", token=SecretStr("EAAB-secret"))


@dataclass
class Info:
    is_on_biz_app: bool = True
    platform_type: str = "CLOUD_API"


def Refused(message: str) -> GraphError:
    return GraphError(400, 100, None, "OAuthException", message, "trace", False)


def Unsure(message: str) -> GraphError:
    return GraphError.local(message, transient=True, outcome_unknown=True)


@dataclass
class FakeGraph:
    info: Info = field(default_factory=Info)
    calls: list[str] = field(default_factory=list)
    fail_sync: dict[str, Exception] = field(default_factory=dict)
    crash_after_sync: str = ""

    async def exchange_code(self, code: str) -> SecretStr:
        self.calls.append("exchange")
        return SecretStr("EAAB-from-code")

    async def subscribe_app(self, waba_id: str, token: SecretStr) -> None:
        self.calls.append(f"subscribe {waba_id}")

    async def phone_number(self, phone_number_id: str, token: SecretStr) -> Info:
        self.calls.append(f"check {phone_number_id}")
        return self.info

    async def request_sync(self, phone_number_id: str, sync_type: str, token: SecretStr) -> str:
        self.calls.append(f"sync {sync_type}")
        if sync_type in self.fail_sync:
            raise self.fail_sync.pop(sync_type)
        if sync_type == self.crash_after_sync:
            raise SystemExit("the process dies before the answer is saved")
        return f"req-{sync_type}"


@dataclass
class MemoryLog:
    rows: list[OnboardingRow] = field(default_factory=list)

    async def load(self) -> OnboardingRow | None:
        return self.rows[-1] if self.rows else None

    async def save(self, row: OnboardingRow) -> None:
        self.rows.append(row)


def onboard(log: MemoryLog, graph: FakeGraph, *, at: int = T0, offboarded: bool = False) -> tuple[Outcome, list[str]]:
    said: list[str] = []

    async def offboarded_since(waba_id: str, since: int) -> bool:
        return offboarded

    async def mirror(row: OnboardingRow) -> None:
        return None

    outcome = asyncio.run(
        run(REQUEST, log, graph, now=lambda: at, offboarded_since=offboarded_since, system_token=None,
            say=said.append, mirror=mirror)
    )  # fmt: skip
    return outcome, said


def test_subscribe_check_then_contacts_then_history_each_saved_before_the_next() -> None:
    log, graph = MemoryLog(), FakeGraph()
    outcome, _ = onboard(log, graph)
    assert outcome.ok
    assert graph.calls == ["subscribe waba-1", "check pn-1", "sync smb_app_state_sync", "sync history"]
    row = outcome.row
    assert (row.contacts_request_id, row.history_request_id) == ("req-smb_app_state_sync", "req-history")
    assert (row.onboarded_at, row.deadline_at, row.step) == (T0, T0 + WINDOW_S, Step.COMPLETE)
    # The contacts request was saved as begun before it was made, and answered before history began.
    steps = [(r.contacts_begun_at > 0, r.contacts_request_id != "", r.history_begun_at > 0) for r in log.rows]
    assert steps.index((True, False, False)) < steps.index((True, True, False)) < steps.index((True, True, True))
    assert [r.version for r in log.rows] == sorted({r.version for r in log.rows})


def test_run_again_it_calls_nothing_and_says_what_was_done() -> None:
    log, graph = MemoryLog(), FakeGraph()
    onboard(log, graph)
    graph.calls.clear()
    outcome, said = onboard(log, graph, at=T0 + 60)
    assert outcome.ok and graph.calls == []
    assert any("contacts sync requested" in line for line in said)


def test_a_number_not_on_the_business_app_gets_no_sync_call() -> None:
    log, graph = MemoryLog(), FakeGraph(info=Info(is_on_biz_app=False, platform_type="CLOUD_API"))
    outcome, _ = onboard(log, graph)
    assert not outcome.ok and "is_on_biz_app=False" in outcome.message
    assert not any(call.startswith("sync") for call in graph.calls)
    assert outcome.row.step == Step.REFUSED


def test_a_crash_between_the_call_and_its_record_never_sends_it_again() -> None:
    log, graph = MemoryLog(), FakeGraph(crash_after_sync="smb_app_state_sync")
    with pytest.raises(SystemExit):
        onboard(log, graph)
    graph.crash_after_sync = ""
    graph.calls.clear()
    outcome, said = onboard(log, graph, at=T0 + 30)
    assert graph.calls.count("sync smb_app_state_sync") == 0
    assert "sync history" in graph.calls and outcome.ok
    assert any("not sent again" in line for line in said)
    assert (outcome.row.contacts_request_id, outcome.row.contacts_requested_at) == ("", T0)


def test_a_refused_sync_may_be_asked_again_an_unsure_one_is_not() -> None:
    log, graph = MemoryLog(), FakeGraph(fail_sync={"smb_app_state_sync": Refused("(#100) invalid parameter")})
    outcome, _ = onboard(log, graph)
    assert not outcome.ok and outcome.row.step == Step.FAILED and outcome.row.contacts_begun_at == 0
    outcome, _ = onboard(log, graph, at=T0 + 10)
    assert outcome.ok and graph.calls.count("sync smb_app_state_sync") == 2

    log, graph = MemoryLog(), FakeGraph(fail_sync={"history": Unsure("read timeout")})
    outcome, _ = onboard(log, graph)
    assert not outcome.ok and outcome.row.history_begun_at == T0
    outcome, _ = onboard(log, graph, at=T0 + 10)
    assert graph.calls.count("sync history") == 1


def test_past_the_deadline_no_sync_is_requested() -> None:
    log, graph = MemoryLog(), FakeGraph(info=Info(is_on_biz_app=False))
    onboard(log, graph)
    graph.info = Info()
    outcome, _ = onboard(log, graph, at=T0 + WINDOW_S + 1)
    assert not outcome.ok and outcome.row.step == Step.EXPIRED and "24-hour window" in outcome.message
    assert not any(call.startswith("sync") for call in graph.calls)


def test_a_number_offboarded_since_starts_a_new_onboarding_whose_syncs_may_be_requested() -> None:
    log, graph = MemoryLog(), FakeGraph()
    first, _ = onboard(log, graph)
    second, said = onboard(log, graph, at=T0 + 5 * WINDOW_S, offboarded=True)
    assert second.ok and second.row.attempt == first.row.attempt + 1
    assert graph.calls.count("sync history") == 2
    assert second.row.version > first.row.version and second.row.onboarded_at == T0 + 5 * WINDOW_S
    assert any("new onboarding" in line for line in said)


def test_no_output_holds_the_token() -> None:
    log, graph = MemoryLog(), FakeGraph(fail_sync={"history": Refused("bad")})
    outcome, said = onboard(log, graph)
    text = "\n".join([*said, outcome.message, *(repr(r) for r in log.rows)])
    assert "EAAB-secret" not in text

"""The worker's onboarding agent against the real broker, a real engine (owned by another process,
as a worker's is) and the fake Graph API: failures that pass are tried again, lasting ones stop
with their reason, a record that does not open is a dead letter."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from onboarding import requests
from onboarding.log import read_newest
from onboarding.sequence import Request
from onboarding.store import OnboardingStore
from runtime.settings import Settings
from sinks.connect import open_engine
from sinks.engine import Engine
from streams.onboarding_agent import OnboardingAgent
from tests import fake_graph
from tests.fake_graph import FakeGraph
from topics.catalog import ensure_topics

WABA, PNID = "400000000000000", "400000000000004"
TOKEN = SecretStr(fake_graph.DEFAULT_TOKEN)


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
async def settings(
    kafka_bootstrap: str, unique: Callable[[str], str], owned_engine: dict[str, str], graph: FakeGraph
) -> Settings:
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=unique("it-agent-") + ".",
        app_secret=SecretStr("agent-secret"),
        clickhouse_url=owned_engine["COEX_CLICKHOUSE_URL"],
        clickhouse_database=owned_engine["COEX_CLICKHOUSE_DATABASE"],
        graph_api_url=graph.url,
        graph_retry_max_s=0.0,  # the client gives up at once: the agent's own retry is what is tested
    )
    await ensure_topics(s)
    return s


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    e = open_engine(settings)
    try:
        yield e
    finally:
        e.close()


def _agent(settings: Settings, engine: Engine) -> OnboardingAgent:
    return OnboardingAgent(settings, lambda: engine, retry_first_s=0.05, retry_max_s=0.2)


def _accepted() -> requests.Accepted:
    return requests.Accepted(Request(WABA, PNID, token=TOKEN), int(time.time()))


async def test_a_failure_that_passes_is_tried_again_until_done(
    settings: Settings, engine: Engine, graph: FakeGraph
) -> None:
    graph.fail("POST", "subscribed_apps", 503, times=2)
    await _agent(settings, engine).until_done(_accepted())
    assert len(graph.calls_to(f"/{WABA}/subscribed_apps")) == 3
    assert len(graph.calls_to(f"/{PNID}/smb_app_data")) == 2
    row = await read_newest(settings, PNID)
    assert row is not None and row.step == "complete" and row.last_error == ""
    mirrored = OnboardingStore(engine, settings.clickhouse_database).load(PNID)
    assert mirrored is not None and mirrored.history_request_id == graph.syncs(PNID)["history"]


async def test_a_lasting_graph_error_stops_with_its_reason(
    settings: Settings, engine: Engine, graph: FakeGraph
) -> None:
    body = fake_graph.graph_error(403, 200, "(#200) Permissions error", type="OAuthException")
    graph.fail("POST", "subscribed_apps", 403, body, times=5)
    await _agent(settings, engine).until_done(_accepted())
    assert len(graph.calls_to(f"/{WABA}/subscribed_apps")) == 1
    row = OnboardingStore(engine, settings.clickhouse_database).load(PNID)
    assert row is not None and row.step == "failed" and "Permissions error" in row.last_error
    assert graph.calls_to(f"/{PNID}/smb_app_data") == []


@dataclass(frozen=True)
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class _Event:
    message: _Message


@dataclass
class _Stream:
    acked: list[int] = field(default_factory=list)

    async def ack(self, event: Any) -> None:
        self.acked.append(event.message.offset)


async def test_a_record_that_does_not_open_is_a_dead_letter(settings: Settings, engine: Engine) -> None:
    other_key = requests.derive_key(SecretStr("another-app-secret"))
    value = requests.encode(Request(WABA, PNID, code=SecretStr("code-sealed-elsewhere")), 0, other_key)
    stream = _Stream()
    message = _Message(settings.topic("onboarding_requests"), 1, 7, PNID.encode(), value)
    await _agent(settings, engine).handle(_Event(message), stream)  # type: ignore[arg-type]
    assert stream.acked == [7]
    rows = engine.query_rows(
        f"SELECT key, error FROM {settings.clickhouse_database}.dead_letters "
        f"WHERE topic = '{message.topic}' AND offset = 7"
    )
    assert len(rows) == 1 and rows[0][0] == PNID
    assert "does not open with this COEX_APP_SECRET" in str(rows[0][1])

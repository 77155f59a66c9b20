"""`POST /onboardings` and `GET /onboardings/{phone_number_id}` against the real broker: the codes,
the sealed request on `onboarding_requests`; then carried out by the worker of `coex dev` against a
fake Graph API: each call once and in order, two racing requests, a worker killed mid-sequence."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from ingest.app import create_app
from onboarding import requests
from runtime.settings import Settings
from tests import fake_graph
from tests.fake_graph import FakeGraph
from tests.integration.broker_kit import free_port
from tests.integration.ingest_kit import SECRET, ingest_client, ingest_settings
from topics.catalog import ONBOARDING_REQUESTS, ensure_topics

ADMIN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
BODY = {"waba_id": "102290129340398", "phone_number_id": "106540352242922", "token": "business-token-XYZ"}


@pytest.fixture
async def settings(kafka_bootstrap: str, unique: Callable[[str], str]) -> AsyncIterator[Settings]:
    s = ingest_settings(kafka_bootstrap, unique("it-onb-") + ".", admin_token=ADMIN)
    await ensure_topics(s)
    yield s


async def _requests_written(settings: Settings) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        settings.topic(ONBOARDING_REQUESTS),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000)
        return [r.value for rs in batch.values() for r in rs if r.value is not None]
    finally:
        await consumer.stop()


async def _requests_count(settings: Settings) -> int:
    """Records on the requests topic, from its end offsets: no wait for records that never come."""
    topic = settings.topic(ONBOARDING_REQUESTS)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_unset_admin_token_hides_both_endpoints(settings: Settings) -> None:
    async with ingest_client(settings.model_copy(update={"admin_token": None})) as client:
        assert (await client.post("/onboardings", json=BODY, headers=AUTH)).status_code == 404
        assert (await client.get("/onboardings/106540352242922", headers=AUTH)).status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {ADMIN}", "Bearer", f"Bearer {ADMIN}x"])
async def test_missing_or_wrong_token_is_401(settings: Settings, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with ingest_client(settings) as client:
        post = await client.post("/onboardings", json=BODY, headers=headers)
        get = await client.get("/onboardings/106540352242922", headers=headers)
    assert (post.status_code, get.status_code) == (401, 401)
    assert await _requests_count(settings) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        orjson.dumps({"waba_id": "1", "phone_number_id": "2"}),  # neither code nor token
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": "c-secret", "token": "t-secret"}),
        orjson.dumps({"waba_id": "1", "code": "c-secret"}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": ""}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2/../3", "code": "c-secret"}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": "c-secret", "extra": 1}),
    ],
)
async def test_bad_body_is_400_and_never_echoes_the_secret(settings: Settings, body: bytes) -> None:
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "secret" not in answer.text
    assert await _requests_count(settings) == 0


async def test_accepted_request_is_sealed_on_its_topic(settings: Settings) -> None:
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", json=BODY, headers=AUTH)
        unknown = await client.get("/onboardings/999", headers=AUTH)
    assert answer.status_code == 202, answer.text
    state = answer.json()
    assert (state["phone_number_id"], state["waba_id"], state["step"]) == (
        BODY["phone_number_id"],
        BODY["waba_id"],
        "accepted",
    )
    assert "business-token-XYZ" not in answer.text
    assert unknown.status_code == 404
    [value] = await _requests_written(settings)
    assert b"business-token-XYZ" not in value
    accepted = requests.decode(value, requests.derive_key(SecretStr(SECRET)))
    assert accepted.request.token is not None and accepted.request.token.get_secret_value() == "business-token-XYZ"
    assert accepted.request.phone_number_id == BODY["phone_number_id"]


async def test_kafka_away_is_503(unique: Callable[[str], str]) -> None:
    settings = ingest_settings("127.0.0.1:1", unique("it-onb-") + ".", admin_token=ADMIN, kafka_send_timeout_s=1.0)
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", json=BODY, headers=AUTH)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]


# ---- carried out by the worker of `coex dev` ----------------------------------------------------

COEX = [sys.executable, "-m", "coex.cli"]
CODE, CODE_TOKEN = "signup-code-for-A", "token-of-A"
SYNC_PATH = "smb_app_data"


@dataclass
class Dev:
    url: str
    graph: FakeGraph
    proc: subprocess.Popen[str]
    out: Path
    held: threading.Event  # the fake holds a contacts sync of HELD_NUMBER
    release: threading.Event


HELD_NUMBER = "300000000000003"


@pytest.fixture(scope="module")
def dev(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """`coex dev` with the admin token set and the Graph API pointed at a fake, for this module's tests."""
    tmp = tmp_path_factory.mktemp("onboarding-dev")
    held, release = threading.Event(), threading.Event()

    def hold(pnid: str, sync_type: str) -> None:
        if pnid == HELD_NUMBER and sync_type == "smb_app_state_sync" and not held.is_set():
            held.set()
            release.wait(120)  # the worker is killed meanwhile; its connection then gets this answer

    run_id = uuid.uuid4().hex[:8]
    port = free_port()
    with FakeGraph(codes={CODE: CODE_TOKEN}, on_sync=hold) as graph:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
        env.update(
            COEX_KAFKA_BOOTSTRAP=kafka_bootstrap,
            COEX_CLICKHOUSE_URL=f"chdb://{tmp / 'clickhouse'}",
            COEX_DATA_DIR=str(tmp / ".coex"),
            COEX_TOPIC_PREFIX=f"onb{run_id}.",
            COEX_WORKER_GROUP=f"coex-onb-{run_id}",
            COEX_INGEST_PORT=str(port),
            COEX_SQL_PORT=str(free_port()),
            COEX_WORKER_WEB_PORT=str(free_port()),
            COEX_ADMIN_TOKEN=ADMIN,
            COEX_GRAPH_API_URL=graph.url,
            COEX_META_APP_ID="fake-app-id",
            COEX_GRAPH_RETRY_MAX_S="5",
        )
        out_path = tmp / "dev.out"
        with open(out_path, "w") as out:
            proc = subprocess.Popen([*COEX, "dev"], env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                deadline = time.monotonic() + 180
                while not _ready(f"http://127.0.0.1:{port}/readyz"):
                    assert proc.poll() is None, out_path.read_text()
                    assert time.monotonic() < deadline, out_path.read_text()
                    time.sleep(0.5)
                yield Dev(f"http://127.0.0.1:{port}", graph, proc, out_path, held, release)
            finally:
                release.set()
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    proc.kill()
        logs = "".join(p.read_text() for p in sorted((tmp / ".coex" / "logs").glob("*.log")))
        assert CODE not in logs and CODE_TOKEN not in logs and fake_graph.DEFAULT_TOKEN not in logs


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _post(dev: Dev, body: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{dev.url}/onboardings", json=body, headers=AUTH, timeout=30)


def _wait_for(dev: Dev, pnid: str, step: str, within_s: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while True:
        answer = httpx.get(f"{dev.url}/onboardings/{pnid}", headers=AUTH, timeout=60)
        if answer.status_code == 200 and answer.json()["step"] == step:
            state: dict[str, object] = answer.json()
            return state
        assert time.monotonic() < deadline, f"{pnid} never reached {step}: {answer.status_code} {answer.text}"
        time.sleep(1)


def _calls(dev: Dev, waba: str, pnid: str) -> list[tuple[str, str]]:
    """The number's Graph calls in order: (method, what), `what` naming the sync type of a sync."""
    seen = []
    for call in list(dev.graph.calls):
        if call.path.endswith("/oauth/access_token") and call.query.get("code") == CODE and pnid == "100000000000001":
            seen.append((call.method, "exchange"))
        elif call.path.endswith(f"/{waba}/subscribed_apps"):
            seen.append((call.method, "subscribe"))
        elif call.path.endswith(f"/{pnid}"):
            seen.append((call.method, "number"))
        elif call.path.endswith(f"/{pnid}/{SYNC_PATH}"):
            seen.append((call.method, str(call.body["sync_type"])))
    return seen


ALL_CALLS = [
    ("POST", "subscribe"),
    ("GET", "number"),
    ("POST", "smb_app_state_sync"),
    ("POST", "history"),
]


def test_a_post_is_carried_out_by_the_worker_each_call_once_in_order(dev: Dev) -> None:
    waba, pnid = "100000000000000", "100000000000001"
    answer = _post(dev, {"waba_id": waba, "phone_number_id": pnid, "code": CODE})
    assert answer.status_code == 202, answer.text
    state = _wait_for(dev, pnid, "complete")
    assert _calls(dev, waba, pnid) == [("GET", "exchange"), *ALL_CALLS]
    syncs = dev.graph.syncs(pnid)
    assert (state["contacts_request_id"], state["history_request_id"]) == (
        syncs["smb_app_state_sync"],
        syncs["history"],
    )
    assert state["waba_id"] == waba and state["is_on_biz_app"] == 1 and state["platform_type"] == "CLOUD_API"
    assert state["last_error"] == "" and state["deadline_at"] == state["onboarded_at"] + 24 * 3600  # type: ignore[operator]
    assert CODE not in json.dumps(state) and CODE_TOKEN not in json.dumps(state)


def test_two_posts_racing_for_one_number_make_each_sync_call_once(dev: Dev) -> None:
    waba, pnid = "200000000000000", "200000000000002"
    body = {"waba_id": waba, "phone_number_id": pnid, "token": fake_graph.DEFAULT_TOKEN}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _post(dev, body), range(2)))
    assert [a.status_code for a in answers] == [202, 202]
    _wait_for(dev, pnid, "complete")
    time.sleep(5)  # the second request's turn, if it were to call anything
    calls = _calls(dev, waba, pnid)
    assert [c for c in calls if c[1] in ("smb_app_state_sync", "history")] == ALL_CALLS[2:]


def test_a_worker_killed_mid_sequence_is_resumed_without_a_second_sync_call(dev: Dev) -> None:
    waba, pnid = "300000000000000", HELD_NUMBER
    answer = _post(dev, {"waba_id": waba, "phone_number_id": pnid, "token": fake_graph.DEFAULT_TOKEN})
    assert answer.status_code == 202, answer.text
    assert dev.held.wait(240), "the contacts sync was never asked"
    [worker] = [
        int(pid)
        for pid, args in (line.split(None, 1) for line in _children(dev.proc.pid))
        if "coex.cli worker" in args or args.rstrip().endswith(" worker")
    ]
    os.kill(worker, signal.SIGKILL)
    dev.release.set()
    # coex dev starts the worker again; it reads the request again and resumes from the log.
    state = _wait_for(dev, pnid, "complete", within_s=300)
    assert _calls(dev, waba, pnid) == ALL_CALLS
    assert state["history_request_id"] == dev.graph.syncs(pnid)["history"]
    assert state["contacts_requested_at"] != 0  # begun before the kill: its answer lost, not asked again


def _children(pid: int) -> list[str]:
    done = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True, check=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def test_every_onboardings_answer_is_documented(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    s = ingest_settings(kafka_bootstrap, unique("it-onb-schema-") + ".", admin_token=ADMIN, ingest_docs=True)
    asyncio.run(ensure_topics(s))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(s))
    operations = [r.ok() for r in schema.get_all_operations() if "/onboardings" in r.ok().path]  # type: ignore[union-attr]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("POST", "/onboardings"),
        ("GET", "/onboardings/{phone_number_id}"),
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.headers = {**(case.headers or {}), **AUTH}
            case.call_and_validate()

        check()

"""`coex onboard` as a user runs it: a real process, the real broker (its onboarding log), the
embedded ClickHouse (`onboardings`), and the fake Graph API recording every call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_graph import DEFAULT_CODE, DEFAULT_TOKEN, Call, FakeGraph

COEX = [sys.executable, "-m", "coex.cli"]
WABA, PNID = "102290129340398", "106540352242922"
SYNC = "/smb_app_data"


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    run_id = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(
        COEX_KAFKA_BOOTSTRAP=kafka_bootstrap,
        COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}",
        COEX_DATA_DIR=str(tmp_path / ".coex"),
        COEX_TOPIC_PREFIX=f"onb{run_id}.",
        COEX_META_APP_ID="fake-app-id",
        COEX_APP_SECRET="fake-app-secret",
        COEX_GRAPH_RETRY_MAX_S="5",
    )
    done = subprocess.run([*COEX, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture
def graph(env: dict[str, str]) -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        env["COEX_GRAPH_API_URL"] = fake.url
        yield fake


def onboard(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["onboard", "--waba-id", WABA, "--phone-number-id", PNID, *(extra or ("--token", DEFAULT_TOKEN))]
    return subprocess.run([*COEX, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def onboardings(env: dict[str, str], cwd: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [*COEX, "sql", "SELECT * FROM onboardings FINAL", "--format", "JSONEachRow"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def sync_types(graph: FakeGraph) -> list[str]:
    return [str(c.body["sync_type"]) for c in graph.calls_to(SYNC, "POST")]


def test_subscribes_checks_then_requests_each_sync_once_and_resumes(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    first = onboard(env, tmp_path, "--code", DEFAULT_CODE)
    assert first.returncode == 0, first.stdout + first.stderr
    paths = [c.path.split("/", 2)[2] for c in graph.calls]
    assert paths == [
        "oauth/access_token",
        f"{WABA}/subscribed_apps",
        PNID,
        f"{PNID}/smb_app_data",
        f"{PNID}/smb_app_data",
    ]
    assert sync_types(graph) == ["smb_app_state_sync", "history"]
    (row,) = onboardings(env, tmp_path)
    syncs = graph.syncs(PNID)
    assert (row["contacts_request_id"], row["history_request_id"]) == (syncs["smb_app_state_sync"], syncs["history"])
    assert (row["is_on_biz_app"], row["platform_type"], row["waba_id"]) == (1, "CLOUD_API", WABA)
    output = first.stdout + first.stderr
    assert DEFAULT_TOKEN not in output and DEFAULT_CODE not in output and "fake-app-secret" not in output

    again = onboard(env, tmp_path, "--code", DEFAULT_CODE)
    assert again.returncode == 0, again.stderr
    assert len(graph.calls) == 5  # nothing called again
    assert "done before: contacts sync requested" in again.stdout


def test_a_number_not_on_the_business_app_stops_before_any_sync(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    graph.set_number(PNID, is_on_biz_app=False, platform_type="CLOUD_API")
    done = onboard(env, tmp_path)
    assert done.returncode == 1
    assert "is_on_biz_app=False" in done.stderr
    assert graph.calls_to(SYNC) == []


def test_server_errors_are_retried_and_each_sync_is_taken_once(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    graph.fail("POST", SYNC, 503, times=2)
    graph.fail("POST", "/subscribed_apps", 429, times=1, retry_after="0")
    done = onboard(env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(graph.calls_to("/subscribed_apps")) == 2
    taken = [str(c.body["sync_type"]) for c in graph.calls_to(SYNC) if c.status == 200]
    assert taken == ["smb_app_state_sync", "history"]


def test_a_graph_error_that_will_not_pass_stops_with_its_code_and_message(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    graph.fail(
        "POST",
        "/subscribed_apps",
        400,
        {"error": {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200, "fbtrace_id": "AbC"}},
    )
    done = onboard(env, tmp_path)
    assert done.returncode == 1
    assert "Permissions error" in done.stderr and "200" in done.stderr
    assert graph.calls_to(SYNC) == []


def test_two_onboardings_of_one_number_at_once_request_each_sync_once(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    procs = [
        subprocess.Popen(
            [*COEX, "onboard", "--waba-id", WABA, "--phone-number-id", PNID, "--token", DEFAULT_TOKEN],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    codes = [p.wait(120) for p in procs]
    assert 0 in codes, [p.communicate() for p in procs]
    assert sorted(sync_types(graph)) == ["history", "smb_app_state_sync"]


def test_a_process_killed_between_a_sync_call_and_its_record_never_sends_it_again(
    env: dict[str, str], graph: FakeGraph, tmp_path: Path
) -> None:
    proc: list[subprocess.Popen[str]] = []
    killed = threading.Event()

    def kill_on_contacts_sync(call: Call) -> None:
        if call.path.endswith(SYNC) and not killed.is_set():
            killed.set()
            proc[0].send_signal(signal.SIGKILL)

    graph.on_call = kill_on_contacts_sync
    args = ["onboard", "--waba-id", WABA, "--phone-number-id", PNID, "--token", DEFAULT_TOKEN]
    proc.append(
        subprocess.Popen(
            [*COEX, *args], env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    )
    assert proc[0].wait(120) == -signal.SIGKILL and killed.is_set()

    resumed = onboard(env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "not sent again" in resumed.stdout
    assert sync_types(graph) == ["smb_app_state_sync", "history"]
    (row,) = onboardings(env, tmp_path)
    assert row["contacts_request_id"] == "" and row["history_request_id"] == graph.syncs(PNID)["history"]

"""The fake Graph API's own promises that the client's tests do not cover: its command, on_sync, offboarding."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from runtime.ports import any_free_port
from tests.fake_graph import DEFAULT_TOKEN, FakeGraph

ROOT = Path(__file__).resolve().parents[3]
PNID = "106540352242922"
SYNC = {"messaging_product": "whatsapp", "sync_type": "history"}
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


def test_it_runs_as_a_command_printing_its_url_and_each_call() -> None:
    port = any_free_port("127.0.0.1")
    command = [sys.executable, "-m", "tests.fake_graph", "--port", str(port)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        server.stdout.readline()
        answer = httpx.post(f"http://127.0.0.1:{port}/v24.0/{PNID}/smb_app_data", json=SYNC, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["request_id"]
        assert server.stdout.readline().strip() == f"POST /v24.0/{PNID}/smb_app_data history -> 200"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0


def test_on_sync_is_told_and_an_offboarded_number_may_sync_again() -> None:
    told: list[tuple[str, str]] = []
    with FakeGraph(on_sync=lambda pnid, sync_type: told.append((pnid, sync_type))) as graph:
        url = f"{graph.url}/v24.0/{PNID}/smb_app_data"
        first = httpx.post(url, json=SYNC, headers=AUTH)
        repeated = httpx.post(url, json=SYNC, headers=AUTH)
        graph.offboard(PNID)
        again = httpx.post(url, json=SYNC, headers=AUTH)
    assert [first.status_code, repeated.status_code, again.status_code] == [200, 400, 200]
    assert repeated.json()["error"]["code"] == 100
    assert first.json()["request_id"] != again.json()["request_id"]
    assert told == [(PNID, "history"), (PNID, "history")]


def test_a_wrong_token_is_refused() -> None:
    with FakeGraph() as graph:
        answer = httpx.get(f"{graph.url}/v24.0/{PNID}", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == 190

"""A newcomer's first hour, as commands: `coex dev`, then `coex simulate`, then `coex sql`.

Real processes on real ports: the session's Kafka broker, the ingest and worker that `coex dev`
supervises, the embedded ClickHouse the worker owns, read through `coex sql`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from tests.integration.broker_kit import free_port

COEX = [sys.executable, "-m", "coex.cli"]
BUSINESSES = 4
MESSAGES = 400


@pytest.fixture
def dev_env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    run_id = uuid.uuid4().hex[:8]
    env.update(
        COEX_KAFKA_BOOTSTRAP=kafka_bootstrap,
        COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}",
        COEX_DATA_DIR=str(tmp_path / ".coex"),
        COEX_TOPIC_PREFIX=f"e2e{run_id}.",
        COEX_WORKER_GROUP=f"coex-e2e-{run_id}",
        COEX_INGEST_PORT=str(free_port()),
        COEX_SQL_PORT=str(free_port()),
        COEX_WORKER_WEB_PORT=str(free_port()),
        COEX_SINK_BATCH_AGE_S="0.5",
    )
    return env


@pytest.fixture
def coex_dev(dev_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    out = open(tmp_path / "dev.out", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*COEX, "dev"], env=dev_env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while "pipeline running" not in (tmp_path / "dev.out").read_text():
            assert proc.poll() is None, (tmp_path / "dev.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.out").read_text()
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()


def sql(env: dict[str, str], cwd: Path, query: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*COEX, "sql", query, "--format", "JSONEachRow"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_dev_then_simulate_lands_every_message_contact_and_sync_state(
    coex_dev: subprocess.Popen[str], dev_env: dict[str, str], tmp_path: Path
) -> None:
    expect_file = tmp_path / "expected.json"
    sim = subprocess.run(
        [*COEX, "simulate", "--businesses", str(BUSINESSES), "--messages", str(MESSAGES), "--seed", "7",
         "--expect-out", str(expect_file)],
        env=dev_env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    expected = json.loads(expect_file.read_text())["businesses"]

    want_counts = {pnid: biz["messages"]["count"] for pnid, biz in expected.items() if biz["messages"]["count"]}
    deadline = time.monotonic() + 240
    while True:
        got = sql(dev_env, tmp_path, "SELECT phone_number_id, count() AS n FROM messages FINAL GROUP BY 1")
        counts = {row["phone_number_id"]: int(row["n"]) for row in got}
        if counts == want_counts:
            break
        assert time.monotonic() < deadline, f"messages never settled: {counts} != {want_counts}"
        time.sleep(2)
    # History sync state is written with the last chunk; give the worker a moment past the messages.
    time.sleep(3)

    rows = sql(
        dev_env, tmp_path,
        "SELECT phone_number_id, message_id, type, direction, source, contact_wa_id, contact_user_id, status, text "
        "FROM messages FINAL",
    )  # fmt: skip
    for pnid, biz in expected.items():
        detail = biz["messages"]["detail"]
        landed = {r["message_id"]: r for r in rows if r["phone_number_id"] == pnid}
        assert set(landed) == set(detail), pnid
        for mid, want in detail.items():
            got_row = landed[mid]
            assert (got_row["type"], got_row["direction"], got_row["source"], got_row["contact_user_id"]) == (
                want["type"], want["direction"], want["source"], want["user_id"],
            ), mid  # fmt: skip
            # A withheld number is filled when an earlier record (in arrival order) gave it.
            known = {want["contact"]} | ({want["user"]} if "." not in want["user"] else set())
            assert got_row["contact_wa_id"] in known, mid
            assert got_row["status"] == want["status"], mid
            assert got_row["text"] == want["text"], mid

    contacts = sql(
        dev_env,
        tmp_path,
        "SELECT phone_number_id, contact_wa_id, contact_user_id, full_name, first_name, deleted FROM contacts FINAL",
    )
    for pnid, biz in expected.items():
        # One row per user, keyed by their number once known, else their BSUID.
        landed_contacts = [
            (c["contact_wa_id"] or c["contact_user_id"], c["contact_user_id"], c["full_name"], c["first_name"],
             bool(c["deleted"]))
            for c in contacts
            if c["phone_number_id"] == pnid
        ]  # fmt: skip
        want_contacts = [
            (key, c["user_id"], c["full_name"], c["first_name"], c["deleted"]) for key, c in biz["contacts"].items()
        ]
        assert sorted(landed_contacts) == sorted(want_contacts), pnid

    # One thread per user, and each user's messages there whether or not they hid their number.
    threads = sql(dev_env, tmp_path, "SELECT phone_number_id, contact_wa_id, contact_user_id, messages FROM threads")
    for pnid, biz in expected.items():
        landed_threads = {
            t["contact_wa_id"] or t["contact_user_id"]: int(t["messages"])
            for t in threads
            if t["phone_number_id"] == pnid
        }
        want_threads = {key: user["messages"] for key, user in biz["users"].items() if user["messages"]}
        assert landed_threads == want_threads, pnid

    sync = {
        r["phone_number_id"]: r
        for r in sql(dev_env, tmp_path, "SELECT phone_number_id, state, progress, messages_received, error_code "
                     "FROM history_sync FINAL")
    }  # fmt: skip
    for pnid, biz in expected.items():
        want = biz["history_sync"]
        assert sync[pnid]["state"] == want["state"], pnid
        assert sync[pnid]["progress"] == want["progress"], pnid
        assert int(sync[pnid]["messages_received"]) == want["messages_received"], pnid
        assert sync[pnid]["error_code"] == want["error_code"], pnid

    events = sql(dev_env, tmp_path, "SELECT waba_id, phone_number, event FROM account_events FINAL")
    want_events = sorted(
        (biz["waba_id"], e["phone_number"], e["event"]) for biz in expected.values() for e in biz["account_events"]
    )
    assert sorted((e["waba_id"], e["phone_number"], e["event"]) for e in events) == want_events

    # Beside the pipeline, a developer gets the ingest's API docs and the worker's health page.
    assert urlopen(f"http://127.0.0.1:{dev_env['COEX_INGEST_PORT']}/docs", timeout=10).status == 200
    assert urlopen(f"http://127.0.0.1:{dev_env['COEX_WORKER_WEB_PORT']}/healthz", timeout=10).status == 200

    coex_dev.send_signal(signal.SIGINT)
    assert coex_dev.wait(90) == 0
    assert "stopped" in (tmp_path / "dev.out").read_text()

"""The business lifecycle and the 24-hour watch on the embedded engine (issue 29): the views of
migration 9, what `coex status` prints, and the worker's onboarding gauges."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import httpx
import pytest
from prometheus_client import REGISTRY

from coex.status import fetch_status, format_status
from runtime.settings import Settings
from schemas.rows import (
    AccountEventRow,
    ContactRow,
    HistorySyncRow,
    OnboardingRow,
    WebhookErrorRow,
    change_key,
)
from sinks.connect import open_engine
from sinks.engine import Engine
from sinks.migrate import apply_migrations
from sinks.writer import BatchWriter
from streams.timers import Timers
from tests.integration.test_streams import COEX, WAIT_S, Cluster

HOUR = 3600
NOW = int(time.time())  # read again at each test's start (`clock`): a suite runs for minutes


@pytest.fixture(autouse=True)
def clock() -> None:
    global NOW
    NOW = int(time.time())


REMOVED, OFFBOARDED, BACK, WAITING, SILENT = "1001", "1002", "1003", "1004", "1005"  # phone_number_ids
INFO = '{"reason": "the business disconnected in the app"}'


@pytest.fixture
def settings(clickhouse_url: str, ch_database: str) -> Settings:
    return Settings(clickhouse_url=clickhouse_url, clickhouse_database=ch_database, onboarding_silence_alert_s=HOUR)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_engine(settings)
    apply_migrations(engine, settings.clickhouse_database)
    try:
        yield engine
    finally:
        engine.close()


async def write(engine: Engine, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    writer = BatchWriter(engine, batch_rows=1000, batch_age_s=60.0, retry_max_s=0.05)
    writer.add(table, rows)
    await writer.flush()


def event(pnid: str, name: str, at: int, info: str = "") -> AccountEventRow:
    raw = f'{{"event": "{name}", "at": {at}}}'
    return AccountEventRow(f"waba{pnid}", f"+1555{pnid}", name, at, info, raw, change_key(raw))


def onboarding(pnid: str, onboarded_at: int, contacts_at: int, history_at: int, version: int = 1) -> OnboardingRow:
    return OnboardingRow(
        phone_number_id=pnid,
        waba_id=f"waba{pnid}",
        onboarded_at=onboarded_at,
        deadline_at=onboarded_at + 24 * HOUR,
        is_on_biz_app=1,
        platform_type="CLOUD_API",
        contacts_request_id="req-c" if contacts_at else "",
        contacts_requested_at=contacts_at,
        history_request_id="req-h" if history_at else "",
        history_requested_at=history_at,
        last_error="",
        updated_at=max(onboarded_at, contacts_at, history_at),
        step="",
        version=version,
    )


def undeliverable(pnid: str, message_id: str, at: int, code: int = 131060) -> WebhookErrorRow:
    return WebhookErrorRow(pnid, f"waba{pnid}", "messages", message_id, code, "t", "m", "d", at, "{}")


async def seed(engine: Engine) -> None:
    """Five businesses: removed, offboarded, offboarded then reconnected, onboarded with the history
    sync not yet requested, and onboarded with both requested 3 h ago but only contacts arrived."""
    await write(
        engine,
        "account_events",
        [
            event(REMOVED, "PARTNER_REMOVED", NOW - 5 * HOUR, INFO),
            event(REMOVED, "ACCOUNT_VIOLATION", NOW - HOUR),  # not a lifecycle event
            event(OFFBOARDED, "ACCOUNT_OFFBOARDED", NOW - 4 * HOUR),
            event(BACK, "ACCOUNT_OFFBOARDED", NOW - 4 * HOUR),
            event(BACK, "ACCOUNT_RECONNECTED", NOW - 2 * HOUR),
        ],
    )
    await write(
        engine,
        "webhook_errors",
        [
            undeliverable(REMOVED, "wamid.a", NOW - 3 * HOUR),
            undeliverable(REMOVED, "wamid.b", NOW - 2 * HOUR),
            undeliverable(REMOVED, "wamid.c", NOW - HOUR, code=131026),  # another error: not counted
        ],
    )
    await write(engine, "onboardings", [onboarding(WAITING, NOW - HOUR, NOW - HOUR + 60, 0)])
    await write(engine, "onboardings", [onboarding(SILENT, NOW - 3 * HOUR, NOW - 3 * HOUR, NOW - 3 * HOUR)])
    await write(
        engine, "contacts", [ContactRow(SILENT, "16505551234", "Ann", "Ann", 0, NOW - HOUR, f"waba{SILENT}", 1)]
    )


async def test_the_views_show_each_business_s_latest_lifecycle_event_and_its_undeliverable_messages(
    engine: Engine,
) -> None:
    await seed(engine)
    await write(engine, "account_events", [event(REMOVED, "PARTNER_REMOVED", NOW - 5 * HOUR, INFO)])  # redelivered
    lifecycle = engine.query_rows(
        "SELECT waba_id, phone_number, event, toUnixTimestamp(event_at), disconnection_info, offboarded "
        "FROM business_lifecycle ORDER BY waba_id"
    )
    assert lifecycle == [
        (f"waba{REMOVED}", f"+1555{REMOVED}", "PARTNER_REMOVED", NOW - 5 * HOUR, INFO, 1),
        (f"waba{OFFBOARDED}", f"+1555{OFFBOARDED}", "ACCOUNT_OFFBOARDED", NOW - 4 * HOUR, "", 1),
        (f"waba{BACK}", f"+1555{BACK}", "ACCOUNT_RECONNECTED", NOW - 2 * HOUR, "", 0),
    ]
    errors = engine.query_rows(
        "SELECT phone_number_id, waba_id, errors, toUnixTimestamp(last_at), last_message_id FROM undeliverable_messages"
    )
    assert errors == [(REMOVED, f"waba{REMOVED}", 2, NOW - 2 * HOUR, "wamid.b")]


async def test_coex_status_shows_the_deadline_the_syncs_the_lifecycle_and_the_131060_count(
    engine: Engine, settings: Settings
) -> None:
    await seed(engine)
    await write(
        engine, "history_sync", [HistorySyncRow(WAITING, f"waba{WAITING}", "in_progress", 10, [], 1, 3, None, NOW, 1)]
    )
    rows = fetch_status(engine.query_rows, settings.clickhouse_database, NOW, settings.onboarding_silence_alert_s)
    header, *lines = format_status(rows).splitlines()
    names = re.split(r"\s{2,}", header)
    parsed = [dict(zip(names, re.split(r"\s{2,}", line), strict=True)) for line in lines]
    table = {cells["PHONE_NUMBER_ID"]: cells for cells in parsed}
    shown = {k: [v["DEADLINE"], v["CONTACTS_SYNC"], v["HISTORY_SYNC"], v["LIFECYCLE"], v["ERR_131060"]]
             for k, v in table.items()}  # fmt: skip
    assert shown[WAITING] == ["23h00m", "yes", "no", "-", "0"]  # the history sync is still to request
    assert shown[SILENT] == ["-", "yes", "silent", "-", "0"]  # requested 3 h ago, no history webhook since
    assert table[WAITING]["ONBOARDED"] == time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(NOW - HOUR))
    assert table[WAITING]["HISTORY"] == "in_progress"
    # Businesses known only from account events: one row per WABA ("?" for its number).
    by_waba = {cells["WABA_ID"]: cells for cells in parsed}
    assert [by_waba[f"waba{p}"]["LIFECYCLE"] for p in (REMOVED, OFFBOARDED, BACK)] == [
        "PARTNER_REMOVED", "ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"]  # fmt: skip
    assert by_waba[f"waba{BACK}"]["OFFBOARDED"] == "no"
    assert table[REMOVED]["ERR_131060"] == "2" and table[REMOVED]["LIFECYCLE"] == "PARTNER_REMOVED"


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_worker_exposes_the_deadline_while_a_sync_is_not_requested_and_flags_a_silent_sync(
    engine: Engine, settings: Settings
) -> None:
    await seed(engine)
    writer = BatchWriter(engine, batch_rows=1000, batch_age_s=60.0, retry_max_s=0.05)
    unused = cast(Any, None)
    timers = Timers(unused, settings, writer, unused, unused, unused)
    await timers.poll_onboardings()
    left = sample("coex_onboarding_deadline_seconds", phone_number_id=WAITING)
    # Onboarded an hour before NOW (the test's start): the time left counts from the poll.
    expected = NOW - HOUR + 24 * HOUR - time.time()
    assert left is not None and abs(left - expected) < 60
    assert sample("coex_onboarding_deadline_seconds", phone_number_id=SILENT) is None  # both requested
    assert sample("coex_onboarding_silent", phone_number_id=SILENT, sync_type="history") == 1
    assert sample("coex_onboarding_silent", phone_number_id=SILENT, sync_type="smb_app_state_sync") == 0
    assert sample("coex_onboarding_silent", phone_number_id=WAITING, sync_type="smb_app_state_sync") == 0
    assert sample("coex_onboarding_silent", phone_number_id=WAITING, sync_type="history") is None  # not requested

    # The history is requested now, and its first webhook lands: the deadline goes, nothing is silent.
    await write(engine, "onboardings", [onboarding(WAITING, NOW - HOUR, NOW - HOUR + 60, NOW, version=2)])
    await write(
        engine, "history_sync", [HistorySyncRow(SILENT, f"waba{SILENT}", "in_progress", 5, [], 1, 3, None, NOW, 1)]
    )
    await timers.poll_onboardings()
    assert sample("coex_onboarding_deadline_seconds", phone_number_id=WAITING) is None
    assert sample("coex_onboarding_silent", phone_number_id=SILENT, sync_type="history") == 0
    assert sample("coex_onboarding_silent", phone_number_id=WAITING, sync_type="history") == 0


def _metrics_show(base: str, line: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + WAIT_S + 2  # the cluster's COEX_ONBOARDING_WATCH_INTERVAL_S
    while time.monotonic() < deadline:
        try:
            if line in httpx.get(f"{base}/metrics", timeout=5).text:
                return
        except httpx.TransportError:  # not listening yet
            pass
        assert all(p.poll() is None for p in cluster.procs), f"the worker exited; see {cluster.logs}"
        time.sleep(1)
    raise AssertionError(f"the worker never exposed {line!r}; see {cluster.logs}")


async def test_a_running_worker_and_coex_status_show_an_onboarding_waiting_for_its_syncs(cluster: Cluster) -> None:
    cluster.start("w1")
    engine = await asyncio.to_thread(cluster.engine)  # served by the worker, which owns the embedded engine
    await write(engine, "onboardings", [onboarding(WAITING, NOW - HOUR, 0, 0)])
    base = f"http://127.0.0.1:{cluster.web_ports['w1']}"
    await asyncio.to_thread(
        _metrics_show, base, f'coex_onboarding_deadline_seconds{{phone_number_id="{WAITING}"}}', cluster
    )

    status = await asyncio.to_thread(
        subprocess.run, [COEX, "status"], env=cluster.env(0), capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    header, *lines = status.stdout.splitlines()
    names = re.split(r"\s{2,}", header)
    (row,) = [dict(zip(names, re.split(r"\s{2,}", line), strict=True)) for line in lines]
    assert row["PHONE_NUMBER_ID"] == WAITING and re.fullmatch(r"2[23]h\d\dm", row["DEADLINE"])
    assert (row["CONTACTS_SYNC"], row["HISTORY_SYNC"], row["LIFECYCLE"]) == ("no", "no", "-")

"""`coex purge` while `coex dev` owns the embedded engine (real broker, worker, ClickHouse): every
row of the business goes, another business's rows stay, and neither a redelivery of the business's
old webhooks nor a replay of the topics by a new worker group writes them again; new traffic of
the business (newer than the purge) is kept."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson

from tests.integration.broker_kit import free_port
from tests.integration.test_end_to_end import COEX, sql
from tests.integration.test_hidden_numbers import post, wait_for, webhooks

__all__ = ["coex_dev_signed", "dev_env"]  # fixtures
from tests.integration.test_end_to_end import dev_env
from tests.integration.test_hidden_numbers import coex_dev_signed

GONE, KEPT = "900000000000021", "900000000000022"
OLD = 1_780_000_000  # the webhooks' entry time: long before the purge
MESSAGES, CONTACTS = 8, 3  # what webhooks() lands per business

# Every table holding rows of a business, and how to find them.
WHERE = {
    "messages": "phone_number_id = '{p}'",
    "contacts": "phone_number_id = '{p}'",
    "history_sync": "phone_number_id = '{p}'",
    "user_identities": "phone_number_id = '{p}'",
    "webhook_errors": "phone_number_id = '{p}'",
    "message_statuses": "phone_number_id = '{p}'",
    "sink_keys": "phone_number_id = '{p}'",
    "account_events": "waba_id = 'waba-{p}'",
    "dead_letters": "key = '{p}'",
}


def dated(bodies: list[bytes], entry_time: int) -> list[bytes]:
    """The webhooks with their entry's `time`, as the platform sends it (the same on a redelivery)."""
    out = []
    for body in bodies:
        doc = orjson.loads(body)
        for entry in doc["entry"]:
            entry["time"] = entry_time
        out.append(orjson.dumps(doc))
    return out


def new_message(pnid: str, wamid: str, at: int) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
        "messages": [
            {"from": "15551239999", "id": wamid, "timestamp": str(at), "type": "text", "text": {"body": "back"}}
        ],
    }
    change = {"field": "messages", "value": value}
    return orjson.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "waba-" + pnid, "time": at, "changes": [change]}]}
    )


def rows_of(env: dict[str, str], cwd: Path, pnid: str) -> dict[str, int]:
    parts = " UNION ALL ".join(
        f"SELECT '{table}' AS t, count() AS n FROM {table} WHERE {where.format(p=pnid)}"
        for table, where in WHERE.items()
    )
    return {row["t"]: int(row["n"]) for row in sql(env, cwd, parts)}


def final_counts(env: dict[str, str], cwd: Path, pnid: str) -> dict[str, int]:
    """Rows as read (one per key), of the tables a replay writes again."""
    tables = ("messages", "contacts", "history_sync", "user_identities", "webhook_errors", "account_events")
    parts = " UNION ALL ".join(
        f"SELECT '{t}' AS t, count() AS n FROM {t} FINAL WHERE {WHERE[t].format(p=pnid)}" for t in tables
    )
    return {row["t"]: int(row["n"]) for row in sql(env, cwd, parts)}


def purge(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COEX, "purge", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def metric(port: str, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


def wait_metric(port: str, name: str, least: float, timeout: float = 180) -> float:
    deadline = time.monotonic() + timeout
    while (value := metric(port, name)) < least and time.monotonic() < deadline:
        time.sleep(1)
    return value


def test_purge_erases_a_business_and_nothing_old_of_it_comes_back(
    coex_dev_signed: dict[str, str], tmp_path: Path
) -> None:
    env = coex_dev_signed
    old = {pnid: dated(webhooks(pnid), OLD) for pnid in (GONE, KEPT)}
    for pnid, bodies in old.items():
        history, *later = bodies
        post(env, history)
        landed = f"SELECT count() AS n FROM messages WHERE phone_number_id = '{pnid}' SETTINGS final = 1"
        assert wait_for(env, tmp_path, landed, [{"n": 6}]) == [{"n": 6}]
        for body in later:
            post(env, body)
    for pnid in (GONE, KEPT):
        counts = f"SELECT count() AS n FROM messages WHERE phone_number_id = '{pnid}' SETTINGS final = 1"
        assert wait_for(env, tmp_path, counts, [{"n": MESSAGES}]) == [{"n": MESSAGES}]
        contacts = f"SELECT count() AS n FROM contacts WHERE phone_number_id = '{pnid}' SETTINGS final = 1"
        assert wait_for(env, tmp_path, contacts, [{"n": CONTACTS}]) == [{"n": CONTACTS}]
    time.sleep(2)  # the last batches of both (batch age 0.5 s)
    kept_before = final_counts(env, tmp_path, KEPT)
    assert kept_before["messages"] == MESSAGES

    asked = purge(env, tmp_path, "--phone-number-id", GONE)
    assert asked.returncode == 2 and "--yes" in asked.stderr
    assert rows_of(env, tmp_path, GONE)["messages"] >= MESSAGES
    unknown = purge(env, tmp_path, "--phone-number-id", "900000000000029", "--yes")
    assert unknown.returncode == 1 and "unknown business" in unknown.stderr

    done = purge(env, tmp_path, "--phone-number-id", GONE, "--yes")
    assert done.returncode == 0, done.stderr
    deleted = {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (\w+) +(\d+)$", done.stdout, re.MULTILINE)}
    assert deleted["messages"] >= MESSAGES and deleted["contacts"] >= CONTACTS, done.stdout
    assert deleted["history_sync"] >= 1 and deleted["user_identities"] >= 1, done.stdout
    assert rows_of(env, tmp_path, GONE) == dict.fromkeys(WHERE, 0)
    purges = sql(env, tmp_path, "SELECT phone_number_id, toString(rows_deleted) AS n, waba_id FROM purges FINAL")
    assert purges == [{"phone_number_id": GONE, "n": str(deleted["total"]), "waba_id": "waba-" + GONE}]
    again = purge(env, tmp_path, "--phone-number-id", GONE, "--yes")
    assert again.returncode == 0 and "nothing of" in again.stdout, again.stderr

    # The platform redelivers every old webhook of the business; then the business sends anew.
    port = env["COEX_WORKER_WEB_PORT"]
    handled = metric(port, "coex_stream_records_total")
    for body in old[GONE]:
        post(env, body)
    post(env, new_message(GONE, "wamid.after-purge", int(time.time()) + 5))
    want = handled + len(old[GONE]) + 1
    assert wait_metric(port, "coex_stream_records_total", want) >= want
    time.sleep(3)  # their batches (age 0.5 s) have landed
    _only_the_new_message(env, tmp_path, kept_before)
    assert metric(port, "coex_purged_records_total") == len(old[GONE])

    # A new worker group reads every topic from its start: the business's old records are dropped
    # again (the worker read the purges before its first record), the other business's rewritten.
    replay = _replay_worker(env, tmp_path)
    try:
        records = sum(len(b) for b in old.values()) + len(old[GONE]) + 1  # each body is one change
        assert wait_metric(replay[1], "coex_stream_records_total", records) >= records
        assert wait_metric(replay[1], "coex_purged_records_total", 2 * len(old[GONE])) >= 2 * len(old[GONE])
        time.sleep(3)
        _only_the_new_message(env, tmp_path, kept_before)
    finally:
        replay[0].send_signal(2)
        replay[0].wait(90)


def _only_the_new_message(env: dict[str, str], cwd: Path, kept_before: dict[str, int]) -> None:
    gone = rows_of(env, cwd, GONE)
    # The new message (written again by a replay: every version counts here), nothing else of the
    # business but the writer's own keys of it.
    assert gone["messages"] >= 1, gone
    assert {t: n for t, n in gone.items() if t not in ("messages", "sink_keys")} == dict.fromkeys(
        set(WHERE) - {"messages", "sink_keys"}, 0
    ), gone
    after = f"SELECT message_id FROM messages FINAL WHERE phone_number_id = '{GONE}'"
    assert sql(env, cwd, after) == [{"message_id": "wamid.after-purge"}]
    assert final_counts(env, cwd, KEPT) == kept_before


def _replay_worker(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = str(free_port())
    replay_env = {**env, "COEX_WORKER_GROUP": env["COEX_WORKER_GROUP"] + "-replay", "COEX_WORKER_WEB_PORT": port}
    out = open(cwd / "replay.out", "w")  # noqa: SIM115 - the process holds it
    proc = subprocess.Popen([*COEX, "worker"], env=replay_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
    out.close()
    assert proc.poll() is None
    return proc, port

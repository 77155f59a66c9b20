"""Users who hide their number, through the whole pipeline: signed webhooks POSTed to the ingest
that `coex dev` runs (real broker, worker, embedded ClickHouse), read back with `coex sql`.

One business's webhooks, every kind the platform sends with numbers withheld: a history chunk with
two withheld users in it and a user who later hides their number, a media follow-up and an echo
with `to` "", a Cloud API message from "", contact syncs by BSUID only and by phone only. The same
webhooks go to a second business in the reverse order: both end with the same users.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from coex.simulator.wire import SIGNATURE_HEADER, sign
from tests.integration.broker_kit import free_port
from tests.integration.test_end_to_end import COEX, sql

__all__ = ["dev_env"]  # fixtures
from tests.integration.test_end_to_end import dev_env

SECRET = "hidden-numbers-test-secret"
BUSINESS_NUMBER = "15550783881"
ANA, BIA, CARL = "US.1110001", "BR.2220002", "US.3330003"  # Ana and Bia hide their numbers; Carl later
CARL_PHONE = "15551230003"
T = 1_780_000_000


def _value(pnid: str, **fields: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": pnid},
        **fields,
    }


def _body(pnid: str, field: str, value: dict[str, Any]) -> bytes:
    change = {"field": field, "value": value}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "waba-" + pnid, "changes": [change]}]})


def _text(wamid: str, at: int, sender: str, to: str, body: str, **ids: str) -> dict[str, Any]:
    return {"from": sender, "to": to, "id": wamid, "timestamp": str(at), "type": "text", "text": {"body": body}, **ids}


def webhooks(pnid: str) -> list[bytes]:
    m = f"wamid.{pnid}."
    history = _value(
        pnid,
        history=[
            {
                "metadata": {"phase": 0, "chunk_order": 1, "progress": 100},
                "threads": [
                    {
                        "id": "",
                        "context": {"wa_id": "", "user_id": ANA, "username": "ana", "country_code": "US"},
                        "messages": [
                            _text(m + "a1", T + 1, "", BUSINESS_NUMBER, "hola", from_user_id=ANA),
                            _text(m + "a2", T + 2, BUSINESS_NUMBER, "", "hi Ana"),
                            {
                                "from": "",
                                "id": m + "a3",
                                "timestamp": str(T + 3),
                                "type": "media_placeholder",
                                "from_user_id": ANA,
                            },
                        ],
                    },
                    {
                        "id": "",
                        "context": {"wa_id": "", "user_id": BIA, "username": "bia", "country_code": "BR"},
                        "messages": [_text(m + "b1", T + 4, "", BUSINESS_NUMBER, "oi", from_user_id=BIA)],
                    },
                    {
                        "id": CARL_PHONE,
                        "context": {"wa_id": CARL_PHONE, "user_id": CARL, "country_code": "US"},
                        "messages": [
                            _text(m + "c1", T + 5, CARL_PHONE, BUSINESS_NUMBER, "hey", from_user_id=CARL),
                            _text(m + "c2", T + 6, BUSINESS_NUMBER, CARL_PHONE, "hey Carl"),
                        ],
                    },
                ],
            }
        ],
    )
    followup = _value(
        pnid,
        contacts=[{"wa_id": "", "user_id": ANA, "profile": {"username": "ana", "country_code": "US"}}],
        messages=[
            {
                "from": "",
                "from_user_id": ANA,
                "id": m + "a3",
                "timestamp": str(T + 3),
                "type": "image",
                "image": {"mime_type": "image/jpeg", "id": "media-a3", "caption": "photo"},
            }
        ],
    )
    echo = _value(
        pnid,
        contacts=[{"wa_id": "", "user_id": CARL, "profile": {"username": "carl", "country_code": "US"}}],
        message_echoes=[_text(m + "c3", T + 100, BUSINESS_NUMBER, "", "still there?", to_user_id=CARL)],
    )
    cloud = _value(
        pnid,
        contacts=[{"wa_id": "", "user_id": CARL, "profile": {"name": "Carl", "username": "carl"}}],
        messages=[_text(m + "c4", T + 200, "", BUSINESS_NUMBER, "yes", from_user_id=CARL)],
    )

    def contact(at: int, phone: str, user_id: str | None, name: str) -> dict[str, Any]:
        person: dict[str, Any] = {"full_name": name, "first_name": name.split()[0], "phone_number": phone}
        if user_id is not None:
            person["user_id"] = user_id
        return {"type": "contact", "contact": person, "action": "add", "metadata": {"timestamp": str(at)}}

    contacts = [
        _value(pnid, state_sync=[contact(T + 10, "", ANA, "Ana Lima")]),
        _value(pnid, state_sync=[contact(T + 20, "", ANA, "Ana Lima Souza")]),  # an edit by BSUID
        _value(pnid, state_sync=[contact(T + 10, "", BIA, "Bia Reis")]),
        _value(pnid, state_sync=[contact(T + 10, CARL_PHONE, None, "Carl Hunt")]),  # phone only (older)
        _value(pnid, state_sync=[contact(T + 300, "", CARL, "Carl Hunter")]),  # after he hid his number
    ]
    return [
        _body(pnid, "history", history),
        _body(pnid, "history", followup),
        _body(pnid, "smb_message_echoes", echo),
        _body(pnid, "messages", cloud),
        *(_body(pnid, "smb_app_state_sync", c) for c in contacts),
    ]


@pytest.fixture
def coex_dev_signed(dev_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    dev_env["COEX_APP_SECRET"] = SECRET
    out = open(tmp_path / "dev.out", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*COEX, "dev"], env=dev_env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while "pipeline running" not in (tmp_path / "dev.out").read_text():
            assert proc.poll() is None, (tmp_path / "dev.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.out").read_text()
            time.sleep(0.5)
        # The banner comes once the children are started; the ingest answers /readyz once Kafka does.
        ready = f"http://127.0.0.1:{dev_env['COEX_INGEST_PORT']}/readyz"
        while not _answers(ready):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "dev.out").read_text()
            time.sleep(0.5)
        yield dev_env
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def post(env: dict[str, str], body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{env['COEX_INGEST_PORT']}/webhook",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET.encode(), body)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def wait_for(env: dict[str, str], cwd: Path, query: str, expected: Any, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = sql(env, cwd, query)
        if rows == expected or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def test_one_contact_and_one_thread_per_user_whatever_the_order(
    coex_dev_signed: dict[str, str], tmp_path: Path
) -> None:
    env = coex_dev_signed
    forward, backward = "900000000000001", "900000000000002"
    history, *later = webhooks(forward)
    post(env, history)
    # Topics are read side by side: what comes later must wait for the history to be taken in.
    landed = f"SELECT count() AS n FROM messages WHERE phone_number_id = '{forward}' SETTINGS final = 1"
    assert wait_for(env, tmp_path, landed, [{"n": 6}]) == [{"n": 6}]
    for body in later:
        post(env, body)
    history, *later = webhooks(backward)
    for body in reversed(later):
        post(env, body)
    # Backwards the history comes last: once the echo, the Cloud API message and the follow-up landed.
    landed = f"SELECT count() AS n FROM messages WHERE phone_number_id = '{backward}' SETTINGS final = 1"
    assert wait_for(env, tmp_path, landed, [{"n": 3}]) == [{"n": 3}]
    post(env, history)

    for pnid in (forward, backward):
        where = f"phone_number_id = '{pnid}'"
        threads = wait_for(
            env,
            tmp_path,
            f"SELECT contact_wa_id, contact_user_id, messages FROM threads WHERE {where} "
            "ORDER BY contact_user_id SETTINGS final = 1",
            [
                {"contact_wa_id": "", "contact_user_id": BIA, "messages": 1},
                {"contact_wa_id": "", "contact_user_id": ANA, "messages": 3},
                {"contact_wa_id": CARL_PHONE, "contact_user_id": CARL, "messages": 4},
            ],
        )
        assert threads == [
            {"contact_wa_id": "", "contact_user_id": BIA, "messages": 1},
            {"contact_wa_id": "", "contact_user_id": ANA, "messages": 3},
            {"contact_wa_id": CARL_PHONE, "contact_user_id": CARL, "messages": 4},
        ], pnid
        contacts = wait_for(
            env,
            tmp_path,
            f"SELECT contact_wa_id, contact_user_id, full_name FROM contacts WHERE {where} "
            "ORDER BY full_name SETTINGS final = 1",
            [
                {"contact_wa_id": "", "contact_user_id": ANA, "full_name": "Ana Lima Souza"},
                {"contact_wa_id": "", "contact_user_id": BIA, "full_name": "Bia Reis"},
                {"contact_wa_id": CARL_PHONE, "contact_user_id": CARL, "full_name": "Carl Hunter"},
            ],
        )
        assert contacts == [
            {"contact_wa_id": "", "contact_user_id": ANA, "full_name": "Ana Lima Souza"},
            {"contact_wa_id": "", "contact_user_id": BIA, "full_name": "Bia Reis"},
            {"contact_wa_id": CARL_PHONE, "contact_user_id": CARL, "full_name": "Carl Hunter"},
        ], pnid
        messages = sql(
            env,
            tmp_path,
            f"SELECT message_id, contact_wa_id, contact_user_id, direction, type FROM messages WHERE {where} "
            "ORDER BY message_id SETTINGS final = 1",
        )
        m = f"wamid.{pnid}."
        got = {
            r["message_id"].removeprefix(m): (r["contact_wa_id"], r["contact_user_id"], r["direction"], r["type"])
            for r in messages
        }
        assert got == {
            "a1": ("", ANA, "inbound", "text"),
            "a2": ("", ANA, "outbound", "text"),
            "a3": ("", ANA, "inbound", "image"),
            "b1": ("", BIA, "inbound", "text"),
            "c1": (CARL_PHONE, CARL, "inbound", "text"),
            "c2": (CARL_PHONE, CARL, "outbound", "text"),
            # Backwards, the echo and the Cloud API message come before any record gave Carl's number.
            "c3": (CARL_PHONE if pnid == forward else "", CARL, "outbound", "text"),
            "c4": (CARL_PHONE if pnid == forward else "", CARL, "inbound", "text"),
        }, pnid
    dead = sql(env, tmp_path, "SELECT error FROM dead_letters")
    assert dead == []

    # Kafka replayed into a fresh ClickHouse by a new worker group gives the same users.
    users = "SELECT phone_number_id, contact_wa_id, contact_user_id, messages FROM threads ORDER BY ALL"
    people = "SELECT phone_number_id, contact_wa_id, contact_user_id, full_name FROM contacts FINAL ORDER BY ALL"
    before = sql(env, tmp_path, users), sql(env, tmp_path, people)
    replay = env | {
        "COEX_CLICKHOUSE_URL": f"chdb://{tmp_path / 'replayed'}",
        "COEX_WORKER_GROUP": env["COEX_WORKER_GROUP"] + "-replay",
        "COEX_SQL_PORT": str(free_port()),
        "COEX_WORKER_WEB_PORT": str(free_port()),
    }
    assert (
        subprocess.run([*COEX, "migrate"], env=replay, cwd=tmp_path, capture_output=True, timeout=120).returncode == 0
    )
    with open(tmp_path / "replay.out", "w") as out:
        worker = subprocess.Popen([*COEX, "worker"], env=replay, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(replay, tmp_path, users, before[0], timeout=120) == before[0]
        assert wait_for(replay, tmp_path, people, before[1]) == before[1]
    finally:
        worker.send_signal(2)
        worker.wait(60)

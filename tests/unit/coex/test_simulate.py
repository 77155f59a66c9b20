"""The traffic generator: deterministic, well-formed, signed, and its expected state adds up."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from random import Random
from typing import Any

import orjson
import pytest

from coex.simulate import users_line
from coex.simulator import Simulation, generate, id_fingerprint, sign
from coex.simulator.history import MEDIA_WINDOW_S, plan_chunks
from coex.simulator.users import bsuid
from coex.simulator.wire import encode, json_str, json_value
from schemas.routing import decode_record, split_delivery

BUSINESSES, MESSAGES, SEED = 4, 400, 11


@dataclass
class Seen:
    """What the deliveries of one business contain, read back from the bytes."""

    # phase -> [(chunk_order, progress)]
    chunks: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    history: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> message
    followups: dict[str, dict[str, Any]] = field(default_factory=dict)
    echoes: set[str] = field(default_factory=set)
    cloud_api: set[str] = field(default_factory=set)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    contact_changes: list[dict[str, Any]] = field(default_factory=list)
    history_errors: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return Simulation(BUSINESSES, MESSAGES, SEED, detail=True)


@pytest.fixture(scope="module")
def bodies(sim: Simulation) -> list[bytes]:
    return [d.body for d in sim.deliveries()]


@pytest.fixture(scope="module")
def seen(bodies: list[bytes], sim: Simulation) -> dict[str, Seen]:
    by_waba = {b.waba_id: b.phone_number_id for b in sim.businesses}
    out: dict[str, Seen] = defaultdict(Seen)
    for body in dict.fromkeys(bodies):  # each distinct delivery once
        doc = orjson.loads(body)
        for entry in doc["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                pnid = value["metadata"]["phone_number_id"] if "metadata" in value else by_waba[entry["id"]]
                s = out[pnid]
                f = change["field"]
                if f == "history":
                    for item in value.get("history", []):
                        s.history_errors += [e["code"] for e in item.get("errors", [])]
                        if "metadata" in item:
                            meta = item["metadata"]
                            s.chunks[meta["phase"]].append((meta["chunk_order"], meta["progress"]))
                            for thread in item["threads"]:
                                for m in thread["messages"]:
                                    s.history[m["id"]] = m
                    for m in value.get("messages", []):
                        s.followups[m["id"]] = m
                elif f == "smb_message_echoes":
                    s.echoes.update(m["id"] for m in value["message_echoes"])
                elif f == "messages":
                    s.cloud_api.update(m["id"] for m in value.get("messages", []))
                    s.statuses += value.get("statuses", [])
                elif f == "smb_app_state_sync":
                    s.contact_changes += value["state_sync"]
                elif f == "account_update":
                    s.events.append(value["event"])
    return out


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = generate(2, 60, seed=5)
    assert first.deliveries == generate(2, 60, seed=5).deliveries
    assert first.deliveries != generate(2, 60, seed=6).deliveries
    assert first.expected.to_json() == generate(2, 60, seed=5).expected.to_json()


def test_every_delivery_is_an_envelope_in_the_platforms_json_style(bodies: list[bytes]) -> None:
    for i, body in enumerate(bodies):
        records = split_delivery(body, f"d{i}", 0.0)
        assert records
        for record in records:
            assert decode_record(record.value).value
        # Non-ASCII escaped as \uXXXX, slashes as \/: pure ASCII on the wire.
        assert body.isascii()
    joined = b"".join(bodies)
    assert b"\\ud83d" in joined  # emoji as surrogate pairs
    assert b"\\/" in joined


def test_escaping_round_trips() -> None:
    doc = {"t": 'Peña 👍🏽 "q" \\ / \n 李雷'}
    assert orjson.loads(encode(doc)) == doc
    # Pre-encoded fragments are escaped once, never twice.
    assert orjson.loads(encode({"t": json_str(doc["t"]), "v": json_value(doc)})) == {"t": doc["t"], "v": doc}


def test_signature_is_hmac_sha256_of_the_exact_bytes(bodies: list[bytes]) -> None:
    secret = b"app-secret"
    for body in bodies[:50]:
        header = sign(secret, body)
        assert header == "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_chunk_orders_are_contiguous_per_phase_and_progress_reaches_100(seen: dict[str, Seen], sim: Simulation) -> None:
    for business in sim.businesses:
        chunks = seen[business.phone_number_id].chunks
        if business.index == 1:
            assert not chunks
            continue
        assert set(chunks) == {0, 1, 2}
        in_order = []
        for phase in sorted(chunks):
            orders = sorted(chunks[phase])
            assert [o for o, _ in orders] == list(range(1, len(orders) + 1))
            in_order += [p for _, p in orders]
        assert in_order == sorted(in_order)
        assert in_order[-1] == 100 and in_order.count(100) == 1


def test_chunks_arrive_out_of_order(seen: dict[str, Seen], sim: Simulation, bodies: list[bytes]) -> None:
    sent = [
        (m["phase"], m["chunk_order"])
        for body in bodies
        for item in orjson.loads(body)["entry"][0]["changes"][0]["value"].get("history", [])
        if (m := item.get("metadata"))
    ]
    assert sent != sorted(sent)


def test_followups_only_for_media_within_14_days(seen: dict[str, Seen], sim: Simulation) -> None:
    early = 0
    for business in sim.businesses:
        s = seen[business.phone_number_id]
        placeholders = {mid: m for mid, m in s.history.items() if m["type"] == "media_placeholder"}
        window_start = business.onboarded_at - MEDIA_WINDOW_S
        recent = {mid for mid, m in placeholders.items() if int(m["timestamp"]) > window_start}
        assert set(s.followups) == recent
        for mid, followup in s.followups.items():
            kind = followup["type"]
            assert kind in ("image", "video", "audio", "document", "sticker")
            assert {"id", "mime_type", "sha256"} <= set(followup[kind])
            assert followup["from"] == placeholders[mid]["from"]
        expected = business.expected.messages or {}
        for mid in placeholders:
            assert (expected[mid].type == "media_placeholder") == (mid not in recent)
        early += len(business.followups) > 0
    assert early


def test_some_followups_come_before_their_placeholder(bodies: list[bytes]) -> None:
    placed: set[str] = set()
    before = 0
    for body in bodies:
        value = orjson.loads(body)["entry"][0]["changes"][0]["value"]
        for item in value.get("history", []):
            for thread in item.get("threads", []):
                placed.update(m["id"] for m in thread["messages"])
        before += sum(m["id"] not in placed for m in value.get("messages", []) if "history" not in value)
    assert before > 0


def test_redeliveries_repeat_whole_bodies(bodies: list[bytes], sim: Simulation) -> None:
    counts = Counter(bodies)
    repeats = sum(c - 1 for c in counts.values())
    assert repeats == sim.expected.redeliveries > 0
    assert len(bodies) == sim.expected.webhooks == sim.total
    assert 0.05 < repeats / len(counts) < 0.2


def test_expected_messages_are_the_unique_messages_sent(seen: dict[str, Seen], sim: Simulation) -> None:
    assert sim.finished
    for business in sim.businesses:
        s = seen[business.phone_number_id]
        exp = business.expected
        assert exp.messages is not None
        sent = set(s.history) | s.echoes | s.cloud_api
        assert set(exp.messages) == sent
        assert exp.message_count == len(sent)
        assert exp.by_source == Counter(history=len(s.history), echo=len(s.echoes), cloud_api=len(s.cloud_api))
        xor = 0
        for mid in sent:
            xor ^= id_fingerprint(mid)
        assert exp.message_ids_xor == xor
        for mid, m in s.history.items():
            e = exp.messages[mid]
            assert e.source == "history"
            assert e.direction == ("outbound" if m["from"] == business.display else "inbound")
            assert e.status == m["history_context"]["status"].lower()
            if m["type"] == "text":
                assert e.text == m["text"]["body"]
        if business.index != 1:
            assert exp.history_sync.state == "complete"
            assert exp.history_sync.messages_received == MESSAGES == len(s.history)
    assert sim.expected.messages == sum(b.expected.message_count for b in sim.businesses)


def test_expected_status_of_echoes_is_the_best_status_sent(seen: dict[str, Seen], sim: Simulation) -> None:
    rank = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
    for business in sim.businesses:
        s = seen[business.phone_number_id]
        best: dict[str, str] = {}
        for status in s.statuses:
            if rank[status["status"]] > rank.get(best.get(status["id"], ""), 0):
                best[status["id"]] = status["status"]
        failed = [st for st in s.statuses if st["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["errors"][0]["code"] == 131060
        assert business.expected.messages is not None
        for mid in s.echoes:
            assert business.expected.messages[mid].status == best.get(mid, "")


def test_expected_contacts_are_the_newest_change_by_timestamp(seen: dict[str, Seen], sim: Simulation) -> None:
    for business in sim.businesses:
        final: dict[str, tuple[int, bool, str]] = {}  # by BSUID: one contact per user
        for item in seen[business.phone_number_id].contact_changes:
            user_id = item["contact"]["user_id"]
            key = (int(item["metadata"]["timestamp"]), item["action"] == "remove")
            if user_id not in final or key > final[user_id][:2]:
                final[user_id] = (*key, item["contact"].get("full_name", ""))
        expected = business.expected.contacts
        assert {u: (c.changed_at, c.deleted, c.full_name) for u, c in expected.items()} == final
        assert any(c.deleted for c in expected.values())
        assert any(not c.deleted for c in expected.values())


def test_contact_changes_arrive_out_of_timestamp_order(bodies: list[bytes]) -> None:
    stamps = [
        int(item["metadata"]["timestamp"])
        for body in dict.fromkeys(bodies)
        for item in orjson.loads(body)["entry"][0]["changes"][0]["value"].get("state_sync", [])
    ]
    assert stamps != sorted(stamps)


def test_one_business_declines_and_one_is_removed(seen: dict[str, Seen], sim: Simulation) -> None:
    declined, removed, offboarded = sim.businesses[1], sim.businesses[2], sim.businesses[3]
    assert seen[declined.phone_number_id].history_errors == [2593109]
    assert declined.expected.history_sync.state == "declined"
    assert declined.expected.history_sync.error_code == 2593109
    assert seen[removed.phone_number_id].events == ["PARTNER_REMOVED"]
    assert [e.event for e in removed.expected.account_events] == ["PARTNER_REMOVED"]
    assert removed.expected.offboarded
    assert seen[offboarded.phone_number_id].events == ["ACCOUNT_OFFBOARDED"]
    assert not sim.businesses[0].expected.offboarded and not seen[sim.businesses[0].phone_number_id].events


def test_a_single_business_neither_declines_nor_leaves() -> None:
    scenario = generate(1, 30, seed=2)
    (business,) = scenario.expected.businesses.values()
    assert business.history_sync.state == "complete"
    assert not business.account_events


def test_expected_state_serializes() -> None:
    doc = orjson.loads(orjson.dumps(generate(3, 40, seed=3).expected.to_json()))
    assert len(doc["businesses"]) == 3
    for business in doc["businesses"].values():
        assert business["messages"]["count"] == len(business["messages"]["detail"])


def test_large_histories_come_in_chunks_of_2000_to_5000() -> None:
    chunks = plan_chunks(Random(1), 1_000_000)
    assert sum(c.count for c in chunks) == 1_000_000
    by_phase: dict[int, list[int]] = defaultdict(list)
    for c in chunks:
        by_phase[c.phase].append(c.count)
    for sizes in by_phase.values():
        assert all(2_000 <= n <= 5_000 for n in sizes[:-1]) and sizes[-1] <= 5_000
    assert chunks[-1].progress == 100 and all(c.progress < 100 for c in chunks[:-1])


def test_normalizing_every_delivery_yields_the_expected_message_ids() -> None:
    # Users who show their number only: whether normalize reads withheld numbers is its own tests' job.
    sim = Simulation(BUSINESSES, MESSAGES, SEED, detail=True, hidden_share=0, switch_share=0)
    bodies = [d.body for d in sim.deliveries()]
    normalize = pytest.importorskip("schemas.normalize")
    found: dict[str, set[str]] = defaultdict(set)
    for i, body in enumerate(dict.fromkeys(bodies)):
        for record in split_delivery(body, f"d{i}", 0.0):
            out = normalize.normalize_change(decode_record(record.value))
            ids = {m.message_id for chunk in out.history_chunks for m in chunk.messages}
            ids |= {m.message_id for m in out.messages}
            found[out.phone_number_id] |= ids
    for business in sim.businesses:
        assert business.expected.messages is not None
        assert found[business.phone_number_id] == set(business.expected.messages)


# -- users who hide their number ------------------------------------------------------------------

BSUID = re.compile(r"[A-Z]{2}\.[0-9]+")


@dataclass(frozen=True)
class UserRecord:
    """One record naming a user, read back from the bytes: a thread of a chunk, an echo, a status..."""

    kind: str
    user_id: str
    at: int  # the record's time (a thread: its newest message)
    phones: tuple[str, ...]  # every phone-number field it has for the user
    raw: bytes


def user_records(body: bytes, display: str) -> list[UserRecord]:
    change = orjson.loads(body)["entry"][0]["changes"][0]
    value = change["value"]
    out: list[UserRecord] = []
    contacts = value.get("contacts", [])
    for item in value.get("history", []):
        for thread in item.get("threads", []):
            context, messages = thread["context"], thread["messages"]
            phones = [thread["id"], context["wa_id"]] + [m["from"] for m in messages if m["from"] != display]
            for m in messages:  # only the user's messages carry their BSUID, and it is the thread's
                assert m.get("from_user_id", context["user_id"]) == context["user_id"]
                assert ("from_user_id" in m) == (m["from"] != display)
            at = max(int(m["timestamp"]) for m in messages)
            out.append(UserRecord("thread", context["user_id"], at, tuple(phones), orjson.dumps(thread)))
    for m in value.get("messages", []):  # media follow-ups and Cloud API messages
        (contact,) = contacts
        user_id = m.get("from_user_id") or m["to_user_id"]
        assert user_id == contact["user_id"]
        phones = (contact["wa_id"], m["from"] if "from_user_id" in m else m["to"])
        kind = "followup" if change["field"] == "history" else "message"
        out.append(UserRecord(kind, user_id, int(m["timestamp"]), phones, orjson.dumps(value)))
    for m in value.get("message_echoes", []):
        (contact,) = contacts
        assert m["to_user_id"] == contact["user_id"]
        phones = (m["to"], contact["wa_id"])
        out.append(UserRecord("echo", m["to_user_id"], int(m["timestamp"]), phones, orjson.dumps(value)))
    for st in value.get("statuses", []):
        raw = orjson.dumps(st)
        out.append(UserRecord("status", st["recipient_user_id"], int(st["timestamp"]), (st["recipient_id"],), raw))
    for item in value.get("state_sync", []):
        c = item["contact"]
        at = int(item["metadata"]["timestamp"])
        out.append(UserRecord("contact", c["user_id"], at, (c["phone_number"],), orjson.dumps(item)))
    return out


@pytest.fixture(scope="module")
def records(bodies: list[bytes], sim: Simulation) -> dict[str, list[UserRecord]]:
    """Every record naming a user, by the business's phone_number_id."""
    by_waba = {b.waba_id: b for b in sim.businesses}
    out: dict[str, list[UserRecord]] = defaultdict(list)
    for body in dict.fromkeys(bodies):
        business = by_waba[orjson.loads(body)["entry"][0]["id"]]
        out[business.phone_number_id] += user_records(body, business.display)
    return out


def test_every_record_names_its_user_by_one_bsuid_per_user_and_business(
    records: dict[str, list[UserRecord]], sim: Simulation
) -> None:
    kinds: set[str] = set()
    for business in sim.businesses:
        by_id = {u.user_id: u for u in business.users.values()}
        assert len(by_id) == len(business.users)  # one BSUID per user
        for record in records[business.phone_number_id]:
            kinds.add(record.kind)
            assert BSUID.fullmatch(record.user_id), record
            user = by_id[record.user_id]
            assert user.user_id.startswith(user.country + ".")
            assert set(record.phones) <= {user.phone, ""}, record  # a number given is that user's
    assert kinds == {"thread", "followup", "message", "echo", "status", "contact"}
    phone = sim.businesses[0].display
    assert bsuid(SEED, 0, phone) == bsuid(SEED, 0, phone) != bsuid(SEED, 1, phone)


def test_no_record_gives_a_number_its_user_withheld(records: dict[str, list[UserRecord]], sim: Simulation) -> None:
    withheld = 0
    for business in sim.businesses:
        by_id = {u.user_id: u for u in business.users.values()}
        for record in records[business.phone_number_id]:
            user = by_id[record.user_id]
            if user.hidden_from is None:
                assert all(record.phones), record  # users who show their number: in every phone field
            elif user.hidden or record.at >= user.hidden_from:
                assert not any(record.phones), record
                assert user.phone.encode() not in record.raw, record
                withheld += 1
    assert withheld > 20


def test_switching_users_give_their_number_in_older_records_only(
    records: dict[str, list[UserRecord]], sim: Simulation
) -> None:
    switched = 0
    for business in sim.businesses:
        by_id = {u.user_id: u for u in business.users.values()}
        for user_id, user in by_id.items():
            if not user.switches:
                continue
            assert user.hidden_from is not None
            mine = [r for r in records[business.phone_number_id] if r.user_id == user_id]
            with_number = [r.at for r in mine if all(r.phones)]
            without = [r.at for r in mine if not any(r.phones)]
            assert len(with_number) + len(without) == len(mine)  # a record gives the number everywhere or nowhere
            assert all(at < user.hidden_from for at in with_number)
            if with_number and without:
                assert max(with_number) < user.hidden_from <= max(without)
                switched += 1
    assert switched >= 2


def test_two_users_with_withheld_numbers_share_a_history_chunk(bodies: list[bytes]) -> None:
    shared = 0
    for body in dict.fromkeys(bodies):
        for item in orjson.loads(body)["entry"][0]["changes"][0]["value"].get("history", []):
            hidden = [t["context"]["user_id"] for t in item.get("threads", []) if t["id"] == ""]
            assert len(set(hidden)) == len(hidden)  # each user their own thread
            shared += len(hidden) >= 2
    assert shared > 0


def test_a_share_of_users_hide_their_number_and_some_switch_mid_history() -> None:
    sim = Simulation(1, 20_000, seed=3)
    for _ in sim.deliveries():
        pass
    expected = sim.expected
    (business,) = expected.businesses.values()
    assert expected.users == len(business.users) > 80
    assert 0.12 <= expected.users_hiding_number / expected.users <= 0.3
    assert 0.03 <= expected.users_switching / expected.users <= 0.1
    # Some users have a username and still show their number.
    assert any(u.username and u.hidden_from is None for u in sim.businesses[0].users.values())
    assert "users: " in users_line(expected) and f"({expected.users_hiding_number} with hidden" in users_line(expected)


def test_hiding_a_number_changes_no_users_contacts_or_messages_per_user() -> None:
    hiding = generate(2, 300, seed=4).expected
    showing = generate(2, 300, seed=4, hidden_share=0, switch_share=0).expected
    assert showing.users_hiding_number == 0 < hiding.users_hiding_number
    assert hiding.users == showing.users
    for pnid, biz in hiding.businesses.items():
        shown = showing.businesses[pnid]
        assert biz.message_count == shown.message_count
        # Messages per user, whoever hides their number: the same users (BSUIDs), the same counts.
        assert biz.by_user == shown.by_user
        assert len(biz.contacts) == len(shown.contacts) == len(biz.contacts_by_user())
        # One contact and one thread per user: keyed by number once a record gave it, else by BSUID.
        keys = {biz.user_key(u) for u in biz.users}
        assert len(keys) == len(biz.users)
        always = biz.users_hiding - biz.users_switching
        assert {biz.user_key(u) for u in always} == always
        assert all(shown.user_key(u) == shown.people[u].phone for u in shown.users)
        doc = hiding.to_json()["businesses"][pnid]
        assert sum(u["messages"] for u in doc["users"].values()) == biz.message_count
        assert {m["user"] for m in doc["messages"]["detail"].values()} <= set(doc["users"])
        for key, contact in doc["contacts"].items():
            assert contact["contact_wa_id"] in (key, "")
            assert doc["users"][key]["user_id"] == contact["user_id"]


def test_one_business_played_under_the_ids_it_was_onboarded_with() -> None:
    sim = Simulation(1, 300, SEED, ids=("9990001", "8880001"))
    envelopes = [orjson.loads(d.body) for d in sim.deliveries()]
    assert {e["entry"][0]["id"] for e in envelopes} == {"9990001"}
    pnids = {c["value"].get("metadata", {}).get("phone_number_id") for e in envelopes for c in e["entry"][0]["changes"]}
    assert pnids - {None} == {"8880001"}
    assert sim.expected.businesses["8880001"].history_sync.state == "complete"
    with pytest.raises(ValueError, match="one business"):
        Simulation(2, 300, SEED, ids=("9990001", "8880001"))

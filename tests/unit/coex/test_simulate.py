"""The traffic generator: deterministic, well-formed, signed, and its expected state adds up."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from random import Random
from typing import Any

import orjson
import pytest

from coex.simulator import Simulation, generate, id_fingerprint, sign
from coex.simulator.history import MEDIA_WINDOW_S, plan_chunks
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
        final: dict[str, tuple[int, bool, str]] = {}
        for item in seen[business.phone_number_id].contact_changes:
            number = item["contact"]["phone_number"]
            key = (int(item["metadata"]["timestamp"]), item["action"] == "remove")
            if number not in final or key > final[number][:2]:
                final[number] = (*key, item["contact"].get("full_name", ""))
        expected = business.expected.contacts
        assert {n: (c.changed_at, c.deleted, c.full_name) for n, c in expected.items()} == final
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


def test_normalizing_every_delivery_yields_the_expected_message_ids(bodies: list[bytes], sim: Simulation) -> None:
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

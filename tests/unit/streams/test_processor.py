"""The processor end to end on a dict store: shuffled, redelivered webhooks -> exactly the expected rows.

The scenario here is also what the stream integration tests send through a real broker.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.routing import split_delivery
from schemas.rows import MessageRow
from sinks.tables import ROW_TYPES
from streams.prepare import messages_json, prepare
from streams.processor import BUSINESSES, Output, Processor, Record
from tests.doubles import DictStore
from topics.catalog import topic_name

WABA = "102290129340398"
PNID = "106540352242922"
BUSINESS = "15550783881"
DECLINED_PNID = "106540352249999"
PHASES = {0: 3, 1: 4, 2: 2}  # phase -> number of chunks
MSGS_PER_CHUNK = 3
USERS = ["16505551234", "12125557890"]


def _envelope(field_name: str, value: dict[str, Any], time: int | None = None) -> bytes:
    """As the platform sends them: only account_update entries carry a `time`."""
    entry: dict[str, Any] = {"id": WABA, "changes": [{"field": field_name, "value": value}]}
    if time is not None:
        entry["time"] = time
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def _meta(pnid: str = PNID) -> dict[str, str]:
    return {"display_phone_number": BUSINESS, "phone_number_id": pnid}


def _mid(phase: int, order: int, i: int) -> str:
    return f"wamid.p{phase}c{order}m{i}"


def _is_media(phase: int, order: int, i: int) -> bool:
    return i == 1  # one media message per chunk


def _has_followup(phase: int, order: int) -> bool:
    return phase == 0 or order % 2 == 0  # older media (phase 1/2, odd chunks) never get one


def _chunk_body(phase: int, order: int, progress: int) -> bytes:
    messages = []
    for i in range(MSGS_PER_CHUNK):
        ts = str(1739230000 + phase * 1000 + order * 10 + i)
        sender = BUSINESS if i % 2 == 0 else USERS[order % 2]
        message: dict[str, Any] = {"from": sender, "id": _mid(phase, order, i), "timestamp": ts}
        if _is_media(phase, order, i):
            message["type"] = "media_placeholder"
        else:
            message["type"] = "text"
            message["text"] = {"body": f"hello {phase}/{order}/{i}"}
        message["history_context"] = {"status": "READ" if i else "DELIVERED"}
        messages.append(message)
    chunk = {"metadata": {"phase": phase, "chunk_order": order, "progress": progress},
             "threads": [{"id": USERS[order % 2], "messages": messages}]}  # fmt: skip
    return _envelope("history", {"messaging_product": "whatsapp", "metadata": _meta(), "history": [chunk]})


def _followup_body(phase: int, order: int) -> bytes:
    message = {
        "from": USERS[order % 2],
        "id": _mid(phase, order, 1),
        "timestamp": "1739230001",
        "type": "image",
        "image": {"caption": f"pic {phase}/{order}", "mime_type": "image/jpeg", "id": f"media{phase}{order}"},
    }
    return _envelope("history", {"messaging_product": "whatsapp", "metadata": _meta(), "messages": [message]})


def _contact_body(wa_id: str, at: int, action: str, name: str) -> bytes:
    contact: dict[str, str] = {"phone_number": wa_id}
    if action == "add":
        contact |= {"full_name": name, "first_name": name.split()[0]}
    item = {"type": "contact", "contact": contact, "action": action, "metadata": {"timestamp": str(at)}}
    return _envelope("smb_app_state_sync", {"messaging_product": "whatsapp", "metadata": _meta(), "state_sync": [item]})


def _echo_body(i: int) -> bytes:
    echo = {"from": BUSINESS, "to": USERS[0], "id": f"wamid.echo{i}", "timestamp": str(1739300000 + i),
            "type": "text", "text": {"body": f"echo {i}"}}  # fmt: skip
    return _envelope(
        "smb_message_echoes", {"messaging_product": "whatsapp", "metadata": _meta(), "message_echoes": [echo]}
    )


def add_echoes(s: Scenario, numbers: Iterable[int]) -> None:
    for i in numbers:
        s.bodies.append(_echo_body(i))
        s.messages[f"wamid.echo{i}"] = ("text", f"echo {i}", "", "", USERS[0], None, None)


def _declined_body() -> bytes:
    error = {"code": 2593109, "title": "History sync is off", "message": "History sync is off",
             "error_data": {"details": "History sharing is turned off by the business"}}  # fmt: skip
    value = {"messaging_product": "whatsapp", "metadata": _meta(DECLINED_PNID), "history": [{"errors": [error]}]}
    return _envelope("history", value)


def _partner_removed_body() -> bytes:
    return _envelope("account_update", {"phone_number": BUSINESS, "event": "PARTNER_REMOVED"}, time=1739400000)


@dataclass
class Scenario:
    bodies: list[bytes] = field(default_factory=list)
    messages: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # message_id -> expected columns
    contacts: dict[str, tuple[str, int]] = field(default_factory=dict)  # wa_id -> (full_name, deleted)
    chunks: set[tuple[int, int]] = field(default_factory=set)


# The columns the scenario checks, in this order.
MESSAGE_COLUMNS = ("type", "text", "media_id", "status", "contact_wa_id", "history_phase", "history_chunk_order")


def build_scenario() -> Scenario:
    s = Scenario()
    last = (max(PHASES), PHASES[max(PHASES)])
    total = sum(PHASES.values())
    done = 0
    for phase, count in PHASES.items():
        for order in range(1, count + 1):
            done += 1
            progress = 100 if (phase, order) == last else int(done * 99 / total)
            s.bodies.append(_chunk_body(phase, order, progress))
            s.chunks.add((phase, order))
            for i in range(MSGS_PER_CHUNK):
                status = "read" if i else "delivered"
                contact = USERS[order % 2]
                if _is_media(phase, order, i):
                    if _has_followup(phase, order):
                        s.bodies.append(_followup_body(phase, order))
                        cols = ("image", f"pic {phase}/{order}", f"media{phase}{order}", status, contact, phase, order)
                    else:
                        cols = ("media_placeholder", "", "", status, contact, phase, order)
                else:
                    cols = ("text", f"hello {phase}/{order}/{i}", "", status, contact, phase, order)
                s.messages[_mid(phase, order, i)] = cols
    add_echoes(s, range(3))
    # Contact changes, to be shuffled: the newest by timestamp must win.
    s.bodies += [
        _contact_body(USERS[0], 100, "add", "Pablo Morales"),
        _contact_body(USERS[0], 300, "add", "Pablo Newest"),
        _contact_body(USERS[0], 200, "remove", ""),
        _contact_body(USERS[1], 100, "add", "Ana Old"),
        _contact_body(USERS[1], 400, "remove", ""),
    ]
    s.contacts = {USERS[0]: ("Pablo Newest", 0), USERS[1]: ("", 1)}
    s.bodies += [_declined_body(), _partner_removed_body()]
    return s


def deliveries(scenario: Scenario, seed: int) -> list[bytes]:
    """Every body two or three times, shuffled."""
    rnd = random.Random(seed)
    out = [b for b in scenario.bodies for _ in range(rnd.choice((2, 3)))]
    rnd.shuffle(out)
    return out


def records(bodies: list[bytes], prefix: str = "coex.") -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for each change of each delivery, as the ingest writes them (a second
    apart: a redelivery arrives later than the delivery)."""
    out = []
    for n, body in enumerate(bodies):
        for rec in split_delivery(body, f"d{n}", 1739500000.0 + n):
            out.append((topic_name(rec.field, prefix), rec.key, rec.value))
    return out


class FinalTables:
    """What `SELECT ... FINAL` shows: per key the highest version, the last written among equals."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Any]] = {}

    KEYS = {
        "messages": (lambda r: (r.phone_number_id, r.message_id), lambda r: r.version),
        "contacts": (lambda r: (r.phone_number_id, r.contact_wa_id), lambda r: r.version),
        "history_sync": (lambda r: (r.phone_number_id,), lambda r: r.version),
        "webhook_errors": (lambda r: (r.phone_number_id, r.occurred_at, r.field, r.message_id, r.code), lambda r: 0),
    }

    def add(self, out: Output) -> None:
        decoded = {
            table: [ROW_TYPES[table](**row) for data in parts for row in data.to_pylist()]
            for table, parts in out.encoded.items()
        }
        for table, rows in [*decoded.items(), *out.rows.items()]:
            key_of, version_of = self.KEYS.get(table, (lambda r: tuple(r), lambda r: 0))
            target = self.tables.setdefault(table, {})
            for row in rows:
                key = key_of(row)
                if key not in target or version_of(row) >= version_of(target[key]):
                    target[key] = row


def run(
    processor: Processor, store: DictStore, recs: list[tuple[str, bytes, bytes]], *, ahead: bool = False
) -> tuple[FinalTables, list[Output]]:
    """`ahead`: each record prepared as the helper process prepares it (streams/helper.py)."""
    final = FinalTables()
    outs = []
    for offset, (topic, key, value) in enumerate(recs):
        prepared = prepare(value, encode=True) if ahead else None
        out = processor.process(Record(topic, 0, offset, key, value), now=1000.0 + offset, prepared=prepared)
        store.apply(out.writes)
        final.add(out)
        outs.append(out)
    return final, outs


def check(scenario: Scenario, final: FinalTables, outs: list[Output]) -> None:
    messages = final.tables["messages"]
    got = {k[1]: tuple(getattr(r, c) for c in MESSAGE_COLUMNS) for k, r in messages.items()}
    assert got == scenario.messages
    contacts = {k[1]: (r.full_name, r.deleted) for k, r in final.tables["contacts"].items()}
    assert contacts == scenario.contacts
    sync = {k[0]: r for k, r in final.tables["history_sync"].items()}
    assert sync[PNID].state == "complete"
    assert sync[PNID].progress == 100
    assert sync[PNID].phases_complete == sorted(PHASES)
    assert sync[PNID].chunks_received == len(scenario.chunks)
    assert sync[PNID].messages_received == len(scenario.chunks) * MSGS_PER_CHUNK
    assert (sync[DECLINED_PNID].state, sync[DECLINED_PNID].error_code) == ("declined", 2593109)
    declined = [r for r in final.tables["webhook_errors"].values() if r.code == 2593109]
    assert len(declined) == 1  # however often it was redelivered, and whenever
    events = {r.event for r in final.tables["account_events"].values()}
    assert events == {"PARTNER_REMOVED"}
    released = [
        (doc["phase"], doc["chunk_order"])
        for out in outs
        for p in out.published
        if (doc := orjson.loads(p.payload()))["kind"] == "history"
    ]
    assert sorted(released) == sorted(scenario.chunks)  # each chunk released exactly once
    assert not any(out.dead_letters for out in outs)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_shuffled_redelivered_webhooks_end_in_exactly_the_expected_rows(seed: int, ahead: bool) -> None:
    scenario = build_scenario()
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    final, outs = run(processor, store, records(deliveries(scenario, seed)), ahead=ahead)
    check(scenario, final, outs)
    assert any(out.encoded for out in outs) == ahead


def test_in_order_delivery_releases_in_order_without_gaps() -> None:
    scenario = build_scenario()
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    final, outs = run(processor, store, records(scenario.bodies))
    check(scenario, final, outs)
    assert not any(out.gaps for out in outs)
    assert store.tables["held_chunks"] == {}


def test_a_bad_record_becomes_one_dead_letter_and_changes_nothing() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    bad = _envelope("history", {"metadata": _meta(), "history": [{"metadata": {"phase": "x"}, "threads": []}]})
    ((topic, key, value),) = records([bad])
    out = processor.process(Record(topic, 3, 42, key, value), now=5.0)
    assert out.writes == [] and out.published == []
    (row,) = out.rows["dead_letters"]
    assert (row.topic, row.partition, row.offset, row.key) == ("coex.history", 3, 42, PNID)
    assert "phase" in row.error
    garbage = processor.process(Record("coex.history", 0, 1, None, b"\xff not json"), now=5.0)
    assert garbage.rows["dead_letters"][0].error.startswith("EnvelopeError")


def test_a_change_of_a_field_coex_does_not_process_is_kept_as_a_dead_letter() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    calls = _envelope("calls", {"metadata": _meta(), "calls": [{"id": "c1", "event": "connect"}]})
    ((topic, key, value),) = records([calls])
    assert topic == "coex.unknown"
    out = processor.process(Record(topic, 0, 7, key, value), now=5.0)
    assert out.writes == [] and out.published == []
    (row,) = out.rows["dead_letters"]
    assert row.error.startswith("UnsupportedChange") and "'calls'" in row.error
    assert '"calls"' in row.raw


def test_the_sweep_flushes_a_stalled_history_and_expires_media_state() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=60.0, media_pending_ttl_s=600.0)
    for offset, body in enumerate([_chunk_body(0, 3, 40), _chunk_body(0, 2, 30)]):
        ((topic, key, value),) = records([body])
        store.apply(processor.process(Record(topic, 2, offset, key, value), now=100.0).writes)
    assert len(store.tables["held_chunks"]) == 2
    assert processor.sweep(1, now=1000.0).writes == []  # another partition's keys are not touched
    out = processor.sweep(2, now=161.0)
    store.apply(out.writes)
    assert [(orjson.loads(p.payload())["chunk_order"]) for p in out.published] == [2, 3]
    # Released held chunks stay compressed until sent: a long run of them is not unpacked at once.
    assert all(p.packed and p.value.endswith(b'"messages":') for p in out.published)
    assert [len(orjson.loads(p.payload())["messages"]) for p in out.published] == [MSGS_PER_CHUNK] * 2
    assert [gap for _, gap in out.gaps] == [(0, 1)]
    assert store.tables["held_chunks"] == {}
    # The gap comes after all: released at once, flagged late for apps and counted for operators.
    ((topic, key, value),) = records([_chunk_body(0, 1, 20)])
    late = processor.process(Record(topic, 2, 2, key, value), now=170.0)
    store.apply(late.writes)
    assert [gap for _, gap in late.late] == [(0, 1)] and late.gaps == []
    assert [orjson.loads(p.payload())["late"] for p in late.published if p.kind == "history"] == [True]
    assert store.tables["media_pending"]
    store.apply(processor.sweep(2, now=800.0).writes)
    assert store.tables["media_pending"] == {}


def test_media_state_is_scanned_once_per_hundredth_of_its_ttl_not_on_every_tick() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1000.0)
    ((topic, key, value),) = records([_chunk_body(1, 1, 10)])
    store.apply(processor.process(Record(topic, 2, 0, key, value), now=0.0).writes)
    assert store.tables["media_pending"]
    store.apply(processor.sweep(2, now=995.0).writes)  # scanned: nothing expired yet
    store.apply(processor.sweep(2, now=1001.0).writes)  # expired, but within 10 s of the last scan
    assert store.tables["media_pending"]
    store.apply(processor.sweep(2, now=1005.0).writes)
    assert store.tables["media_pending"] == {}


@pytest.mark.parametrize("codec_tag", [b"l", b"0"])
def test_held_chunks_are_stored_compactly(codec_tag: bytes) -> None:
    from streams import codec

    body = orjson.dumps([{"text": "hello"}] * 500)
    packed = codec.pack(body)
    assert codec.unpack(packed) == body
    assert codec.unpack(b"0" + body) == body
    if codec_tag == b"l":
        assert len(packed) < len(body) // 10


def test_placeholders_older_than_the_followup_window_keep_no_join_state() -> None:
    store = DictStore()
    # The window counts back from the newest history message seen (day 0): with none, only the
    # newest message itself could still get a follow-up; the placeholder is a second older.
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9, media_followup_window_s=0.0)
    ((topic, key, value),) = records([_chunk_body(1, 1, 10)])
    out = processor.process(Record(topic, 0, 0, key, value), now=5.0)
    store.apply(out.writes)
    assert store.tables.get("media_pending", {}) == {}
    placeholder = [r for r in out.rows["messages"] if r.message_id == _mid(1, 1, 1)]
    assert [r.type for r in placeholder] == ["media_placeholder"]
    # A window that covers them keeps the state the follow-up joins on.
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    store.apply(processor.process(Record(topic, 0, 0, key, value), now=5.0).writes)
    assert list(store.tables["media_pending"]) == [f"{PNID}|{_mid(1, 1, 1)}"]


def test_unordered_releases_merge_into_one_record_per_business_and_kind() -> None:
    from streams.processor import merge_unordered, release_record

    a = release_record(PNID, "w1", "media", None, None, False, b'[{"message_id":"a"}]')
    b = release_record(PNID, "w1", "media", None, None, False, b'[{"message_id":"b"}]')
    live = release_record(PNID, "w1", "live", None, None, False, b'[{"message_id":"c"},{"message_id":"d"}]')
    other = release_record(DECLINED_PNID, "w2", "media", None, None, False, b'[{"message_id":"e"}]')
    merged = {(p.key, p.kind): orjson.loads(p.payload()) for p in merge_unordered([a, live, b, other])}
    assert {key: (doc["phone_number_id"], doc["waba_id"]) for key, doc in merged.items()} == {
        (PNID.encode(), "media"): (PNID, "w1"),
        (PNID.encode(), "live"): (PNID, "w1"),
        (DECLINED_PNID.encode(), "media"): (DECLINED_PNID, "w2"),
    }
    assert [m["message_id"] for m in merged[(PNID.encode(), "media")]["messages"]] == ["a", "b"]
    assert [m["message_id"] for m in merged[(PNID.encode(), "live")]["messages"]] == ["c", "d"]
    assert [m["message_id"] for m in merged[(DECLINED_PNID.encode(), "media")]["messages"]] == ["e"]


def test_a_published_message_has_its_columns_but_the_records_own_and_the_empty_ones() -> None:
    row = MessageRow(
        PNID, "waba", "wamid.1", "15550001", "inbound", "history", "text", "hi", "", "", "read",
        1739212624, 0, 3, '{"id":"wamid.1","type":"text"}', "", None, 260,
    )  # fmt: skip
    [message] = orjson.loads(messages_json([row]))
    assert message == {
        "message_id": "wamid.1",
        "contact_wa_id": "15550001",
        "direction": "inbound",
        "source": "history",
        "type": "text",
        "text": "hi",
        "status": "read",
        "sent_at": 1739212624,
        "history_phase": 0,
        "history_chunk_order": 3,
        "raw": {"id": "wamid.1", "type": "text"},
    }
    live = row._replace(
        source="cloud_api", type="image", text="", media_id="m1", media_mime_type="image/jpeg", status="",
        history_phase=None, history_chunk_order=None, context_id="wamid.0", error_code=131060,
        contact_user_id="US.13491208655302741918", contact_username="pablo",
    )  # fmt: skip
    [message] = orjson.loads(messages_json([live]))
    optional = ("media_id", "media_mime_type", "context_id", "error_code", "contact_user_id", "contact_username")
    assert {k: message[k] for k in optional} == {
        "media_id": "m1",
        "media_mime_type": "image/jpeg",
        "context_id": "wamid.0",
        "error_code": 131060,
        "contact_user_id": "US.13491208655302741918",
        "contact_username": "pablo",
    }
    left_out = {"phone_number_id", "waba_id", "version", "history_phase", "history_chunk_order"}
    assert set(MessageRow._fields) - set(message) == left_out


def test_a_bad_message_is_a_dead_letter_of_its_own_and_its_chunk_goes_on() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    body = orjson.loads(_chunk_body(0, 0, 100))
    thread = body["entry"][0]["changes"][0]["value"]["history"][0]["threads"][0]
    del thread["messages"][2]["timestamp"]
    ((topic, key, value),) = records([orjson.dumps(body)])
    out = processor.process(Record(topic, 1, 7, key, value), now=5.0)
    (row,) = out.rows["dead_letters"]
    assert (row.topic, row.partition, row.offset, row.key) == ("coex.history", 1, 7, PNID)
    assert row.error == "ChangeError: $.value.history[0].threads[0].messages[2].timestamp: " + (
        "expected a unix timestamp in seconds (integer or digit string)"
    )
    assert orjson.loads(row.raw) == thread["messages"][2]
    assert out.dead_letters == [row.error]
    assert sorted(m.message_id for m in out.rows["messages"]) == [_mid(0, 0, 0), _mid(0, 0, 1)]
    [published] = [orjson.loads(p.payload()) for p in out.published if p.kind == "history"]
    assert [m["message_id"] for m in published["messages"]] == [_mid(0, 0, 0), _mid(0, 0, 1)]
    (sync,) = out.rows["history_sync"]
    assert (sync.chunks_received, sync.messages_received) == (1, 2)


def test_a_placeholder_held_by_the_previous_release_joins_its_followup_after_the_upgrade() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    ((topic, key, value),) = records([_chunk_body(0, 1, 10)])
    store.apply(processor.process(Record(topic, 0, 0, key, value), now=5.0).writes)
    [(media_key, held)] = store.tables["media_pending"].items()
    [placeholder] = [r for r in processor.process(Record(topic, 0, 0, key, value), now=5.0).rows["messages"]
                     if r.type == "media_placeholder"]  # fmt: skip
    # What the release before named records kept: [placeholder row as a list, no follow-up, since].
    store.tables["media_pending"][media_key] = held[:4] + orjson.dumps([list(placeholder), None, 5.0])
    ((topic, key, value),) = records([_followup_body(0, 1)])
    out = processor.process(Record(topic, 0, 1, key, value), now=6.0)
    assert out.dead_letters == []
    [joined] = out.rows["messages"]
    assert (joined.type, joined.status, joined.history_chunk_order) == ("image", placeholder.status, 1)


def test_a_declined_history_shared_by_a_new_onboarding_completes() -> None:
    declined = _envelope(
        "history",
        {"messaging_product": "whatsapp", "metadata": _meta(), "history": [{"errors": [{"code": 2593109}]}]},
    )
    bodies = [declined, _chunk_body(0, 0, 50), declined, _chunk_body(0, 1, 100), declined]
    store = DictStore()
    final, outs = run(Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9), store, records(bodies))
    (row,) = final.tables["history_sync"].values()
    assert (row.state, row.progress, row.chunks_received, row.error_code) == ("complete", 100, 2, 2593109)
    assert [r.code for r in final.tables["webhook_errors"].values()] == [2593109]  # one row, its first arrival
    assert not any(out.dead_letters for out in outs)


def test_a_reconnection_clears_the_offboarded_state_and_a_late_removal_does_not_bring_it_back() -> None:
    def event(name: str, time: int) -> bytes:
        return _envelope("account_update", {"phone_number": BUSINESS, "event": name}, time=time)

    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    bodies = [event("PARTNER_REMOVED", 100), event("ACCOUNT_RECONNECTED", 200), event("PARTNER_REMOVED", 100)]
    final, _ = run(processor, store, records(bodies))
    stored = store.get(BUSINESSES, WABA)
    assert stored is not None
    assert orjson.loads(stored[4:]) == {"offboarded": False, "event": "ACCOUNT_RECONNECTED", "at": 200}
    assert {r.event for r in final.tables["account_events"].values()} == {"PARTNER_REMOVED", "ACCOUNT_RECONNECTED"}
    run(processor, store, records([event("ACCOUNT_OFFBOARDED", 300)]))
    stored = store.get(BUSINESSES, WABA)
    assert stored is not None and orjson.loads(stored[4:])["offboarded"] is True

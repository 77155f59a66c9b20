"""Normalization: the reference's examples row by row, the Cloud API forms, errors, invariants."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import ChangeError
from schemas.normalize import Normalized, normalize_change, normalize_value
from schemas.routing import decode_record, split_delivery
from schemas.rows import MessageRow, contact_version, message_version
from tests.unit import strategies as s

SPEC = Path(__file__).resolve().parents[2] / "fixtures" / "spec"
WABA, PNID, BUSINESS, USER = "102290129340398", "106540352242922", "15550783881", "16505551234"
META = {"display_phone_number": BUSINESS, "phone_number_id": PNID}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec_change(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(entry, change) of a one-change fixture."""
    doc = orjson.loads((SPEC / name).read_bytes())
    entry = doc["entry"][0]
    return entry, entry["changes"][0]


def normalize_spec(name: str, received_at: float = 1_800_000_000.5) -> Normalized:
    entry, change = spec_change(name)
    return normalize_value(
        change["field"],
        change["value"],
        waba_id=entry["id"],
        entry_time=entry.get("time"),
        received_at=received_at,
    )


def norm(field: str, value: dict[str, Any], entry_time: int | None = 1739230990) -> Normalized:
    return normalize_value(field, value, waba_id=WABA, entry_time=entry_time, received_at=1_800_000_000.0)


# ---- the reference's examples and syntax blocks ------------------------------------------------


def test_every_fixture_normalizes_through_the_kafka_wrapper() -> None:
    names = sorted(p.name for p in SPEC.glob("*.json"))
    assert len(names) == 11
    for name in names:
        records = split_delivery((SPEC / name).read_bytes(), "d-1", 1_800_000_000.0)
        assert len(records) == 1
        change = decode_record(records[0].value)
        assert normalize_change(change) == normalize_spec(name, received_at=1_800_000_000.0)


def test_history_approved_example() -> None:
    out = normalize_spec("history_approved_example.json")
    assert (out.field, out.phone_number_id, out.waba_id, out.business_number) == (
        "history",
        PNID,
        WABA,
        BUSINESS,
    )
    assert out.messages == out.media_followups == []
    assert out.history_errors == out.errors == []
    [chunk] = out.history_chunks
    assert (chunk.phase, chunk.chunk_order, chunk.progress) == (0, 1, 55)
    got = [(r.contact_wa_id, r.direction, r.type, r.text, r.status, r.sent_at, r.version) for r in chunk.messages]
    assert got == [
        (USER, "outbound", "text", "Here's the info you requested! https://www.meta.", "read", 1739230955, 260),
        (USER, "outbound", "media_placeholder", "", "played", 1739230970, message_version(False, "played")),
        (USER, "inbound", "text", "Thanks!", "read", 1739230970, message_version(True, "read")),
        (
            "12125557890",
            "outbound",
            "text",
            "Thanks for your order! As a thank you, use code",
            "delivered",
            1739230970,
            259,
        ),
    ]
    for row in chunk.messages:
        assert (row.source, row.history_phase, row.history_chunk_order) == ("history", 0, 1)
        assert (row.phone_number_id, row.waba_id, row.media_id, row.context_id) == (PNID, WABA, "", "")
        assert row.error_code is None
    _, change = spec_change("history_approved_example.json")
    first = change["value"]["history"][0]["threads"][0]["messages"][0]
    assert orjson.loads(chunk.messages[0].raw) == first


def test_history_approved_syntax_carries_to() -> None:
    [chunk] = normalize_spec("history_approved_syntax.json").history_chunks
    [row] = chunk.messages
    assert (chunk.phase, chunk.chunk_order, chunk.progress) == (1, 1, 55)
    assert (row.direction, row.contact_wa_id, row.status, row.sent_at) == ("outbound", USER, "read", 1738796547)


def test_media_followup_completes_the_placeholder() -> None:
    [placeholder] = [
        r
        for r in normalize_spec("history_approved_example.json").history_chunks[0].messages
        if r.type == "media_placeholder"
    ]
    out = normalize_spec("history_media_followup_example.json")
    assert out.history_chunks == [] and out.messages == []
    [row] = out.media_followups
    assert row == MessageRow(
        phone_number_id=PNID,
        waba_id=WABA,
        message_id=placeholder.message_id,
        contact_wa_id=USER,
        direction="outbound",
        source="history",
        type="image",
        text="Black Prince echeveria",
        media_id="24230790383178626",
        media_mime_type="image/jpeg",
        status="",
        sent_at=1738796547,
        history_phase=None,
        history_chunk_order=None,
        raw=row.raw,
        context_id="",
        error_code=None,
        version=message_version(True, ""),
    )
    assert row.version > placeholder.version
    assert (row.contact_wa_id, row.direction) == (placeholder.contact_wa_id, placeholder.direction)


@pytest.mark.parametrize("name", ["history_declined_example.json", "history_declined_syntax.json"])
def test_history_declined(name: str) -> None:
    out = normalize_spec(name, received_at=1_800_000_000.9)
    assert out.history_chunks == [] and out.errors == []
    [error] = out.history_errors
    assert (error.phone_number_id, error.waba_id, error.field, error.message_id, error.code) == (
        PNID,
        WABA,
        "history",
        "",
        2593109,
    )
    assert error.details == "History sharing is turned off by the business"
    assert error.title.startswith("History sync is turned off")
    assert error.occurred_at == 1_800_000_000  # no entry time: the receive time, whole seconds
    assert orjson.loads(error.raw)["code"] == 2593109


def test_state_sync_syntax() -> None:
    out = normalize_spec("smb_app_state_sync_syntax.json")
    [contact] = out.contacts
    assert contact.phone_number_id == PNID and contact.waba_id == WABA
    assert (contact.contact_wa_id, contact.full_name, contact.first_name, contact.deleted) == (
        USER,
        "Pablo Morales",
        "Pablo",
        0,
    )
    assert contact.changed_at == 1738346006
    assert contact.version == contact_version(1738346006, False)


@pytest.mark.parametrize("name", ["smb_message_echoes_example.json", "smb_message_echoes_syntax.json"])
def test_echoes(name: str) -> None:
    out = normalize_spec(name)
    [row] = out.messages
    assert (row.source, row.direction, row.contact_wa_id, row.type, row.status) == (
        "echo",
        "outbound",
        USER,
        "text",
        "",
    )
    assert row.text.startswith("Here's the info you requested!")
    assert (row.history_phase, row.history_chunk_order) == (None, None)
    assert row.version == message_version(True, "")


@pytest.mark.parametrize("name", ["account_update_example.json", "account_update_syntax.json"])
def test_account_update_partner_removed(name: str) -> None:
    out = normalize_spec(name)
    assert out.phone_number_id == "" and out.waba_id == WABA
    [event] = out.account_events
    assert (event.waba_id, event.phone_number, event.event, event.event_at) == (
        WABA,
        BUSINESS,
        "PARTNER_REMOVED",
        1739212624,
    )
    assert event.disconnection_info == ""
    assert orjson.loads(event.raw) == {"phone_number": BUSINESS, "event": "PARTNER_REMOVED"}


def test_messages_error_131060() -> None:
    out = normalize_spec("messages_error_131060.json")
    [error] = out.errors
    assert (error.field, error.code, error.message_id, error.occurred_at) == ("messages", 131060, "", 1739230990)
    assert out.messages == []
    assert out.statuses == []


# ---- forms beyond the reference's examples -----------------------------------------------------


def test_account_update_with_disconnection_info_and_offboarded() -> None:
    info = {"reason": "business_disconnected", "initiated_by": "BUSINESS"}
    [removed] = norm("account_update", {"event": "PARTNER_REMOVED", "disconnection_info": info}).account_events
    assert orjson.loads(removed.disconnection_info) == info
    assert removed.phone_number == ""
    out = norm("account_update", {"phone_number": BUSINESS, "event": "ACCOUNT_OFFBOARDED"}, entry_time=None)
    assert out.account_events[0].event == "ACCOUNT_OFFBOARDED"
    assert out.account_events[0].event_at == 1_800_000_000


def test_contact_removal_is_a_tombstone() -> None:
    value = {
        "metadata": META,
        "state_sync": [
            {
                "type": "contact",
                "contact": {"phone_number": USER},
                "action": "remove",
                "metadata": {"timestamp": 1738346010},
            },
            {"type": "label", "label": {"id": "1"}},
        ],
    }
    [contact] = norm("smb_app_state_sync", value).contacts
    assert (contact.deleted, contact.full_name, contact.first_name, contact.changed_at) == (1, "", "", 1738346010)
    assert contact.version == contact_version(1738346010, True)


def cloud(**value: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": META, **value}


def inbound(kind: str, content: Any, **more: Any) -> dict[str, Any]:
    return {"from": USER, "id": f"wamid.{kind}", "timestamp": 1739231000, "type": kind, kind: content, **more}


@pytest.mark.parametrize(
    ("message", "text", "media_id", "mime"),
    [
        (inbound("text", {"body": "hi"}), "hi", "", ""),
        (inbound("image", {"id": "m1", "mime_type": "image/jpeg", "caption": "cap"}), "cap", "m1", "image/jpeg"),
        (inbound("video", {"id": "m2", "mime_type": "video/mp4"}), "", "m2", "video/mp4"),
        (
            inbound("document", {"id": "m3", "mime_type": "application/pdf", "caption": "c", "filename": "f"}),
            "c",
            "m3",
            "application/pdf",
        ),
        (inbound("audio", {"id": "m4", "mime_type": "audio/ogg", "voice": True}), "", "m4", "audio/ogg"),
        (inbound("sticker", {"id": "m5", "mime_type": "image/webp", "animated": False}), "", "m5", "image/webp"),
        (inbound("button", {"text": "Yes", "payload": "Y"}), "Yes", "", ""),
        (
            inbound("interactive", {"type": "button_reply", "button_reply": {"id": "b", "title": "Book"}}),
            "Book",
            "",
            "",
        ),
        (
            inbound(
                "interactive", {"type": "list_reply", "list_reply": {"id": "l", "title": "Row", "description": "d"}}
            ),
            "Row",
            "",
            "",
        ),
        (
            inbound(
                "interactive",
                {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"}},
            ),
            "Sent",
            "",
            "",
        ),
        (inbound("reaction", {"message_id": "wamid.target", "emoji": "👍"}), "👍", "", ""),
        (inbound("order", {"catalog_id": "c", "text": "note", "product_items": []}), "note", "", ""),
        (inbound("system", {"body": "changed number", "type": "user_changed_number"}), "changed number", "", ""),
        (inbound("location", {"latitude": 1.5, "longitude": 2.5, "name": "Here"}), "", "", ""),
        (inbound("contacts", [{"name": {"formatted_name": "A"}}]), "", "", ""),
        (inbound("future_kind", {"body": "new"}), "new", "", ""),
        (inbound("text", {"body": 5}), "", "", ""),
    ],
)
def test_inbound_message_types(message: dict[str, Any], text: str, media_id: str, mime: str) -> None:
    contacts = [{"profile": {"name": "Pablo"}, "wa_id": USER}]
    out = norm("messages", cloud(contacts=contacts, messages=[message]))
    [row] = out.messages
    assert (row.text, row.media_id, row.media_mime_type) == (text, media_id, mime)
    assert (row.source, row.direction, row.contact_wa_id, row.type, row.status) == (
        "cloud_api",
        "inbound",
        USER,
        message["type"],
        "",
    )
    assert orjson.loads(row.raw) == message
    assert out.contacts == []  # contacts come from smb_app_state_sync only


def test_reply_context_and_reaction_target() -> None:
    reply = inbound("text", {"body": "re"}, context={"from": BUSINESS, "id": "wamid.orig"})
    reaction = inbound("reaction", {"message_id": "wamid.liked", "emoji": ""})
    rows = norm("messages", cloud(messages=[reply, reaction])).messages
    assert [(r.context_id, r.text) for r in rows] == [("wamid.orig", "re"), ("wamid.liked", "")]


def test_errors_inside_messages_and_statuses() -> None:
    unsupported = inbound(
        "unsupported",
        {"type": "edit"},
        errors=[{"code": 131051, "title": "Message type unknown", "error_data": {"details": "d"}}],
    )
    statuses = [
        {"id": "wamid.out1", "status": "DELIVERED", "timestamp": "1739231001", "recipient_id": USER},
        {
            "id": "wamid.out2",
            "status": "failed",
            "timestamp": 1739231002,
            "recipient_id": USER,
            "errors": [{"code": 131060, "title": "t", "message": "m"}],
            "pricing": {"billable": False},
        },
    ]
    out = norm("messages", cloud(messages=[unsupported], statuses=statuses))
    assert out.messages[0].error_code == 131051
    assert [(s.message_id, s.status, s.status_at, s.error_code, s.recipient_id) for s in out.statuses] == [
        ("wamid.out1", "delivered", 1739231001, None, USER),
        ("wamid.out2", "failed", 1739231002, 131060, USER),
    ]
    assert orjson.loads(out.statuses[1].raw)["pricing"] == {"billable": False}
    assert [(e.message_id, e.code, e.details) for e in out.errors] == [
        ("wamid.unsupported", 131051, "d"),
        ("wamid.out2", 131060, ""),
    ]
    # Dated by the message and the status, not by when the webhook arrived.
    assert [e.occurred_at for e in out.errors] == [out.messages[0].sent_at, 1739231002]


def test_direction_uses_digits_and_from_me() -> None:
    value = {
        "metadata": {"display_phone_number": "+1 555-078-3881", "phone_number_id": PNID},
        "history": [
            {
                "metadata": {"phase": "2", "chunk_order": "7", "progress": 100},
                "threads": [
                    {
                        "id": USER,
                        "messages": [
                            {"from": BUSINESS, "id": "wamid.a", "timestamp": 1, "type": "text", "text": {"body": "x"}},
                            {"id": "wamid.b", "timestamp": 2, "type": "text", "history_context": {"from_me": True}},
                            {"id": "wamid.c", "timestamp": 3, "type": "text", "history_context": {"status": "SENT"}},
                        ],
                    }
                ],
            }
        ],
        "messages": [{"from": USER, "id": "wamid.d", "timestamp": "4", "type": "audio", "audio": {"id": "9"}}],
    }
    out = norm("history", value)
    chunk = out.history_chunks[0]
    assert (chunk.phase, chunk.chunk_order, chunk.progress) == (2, 7, 100)
    assert [r.direction for r in chunk.messages] == ["outbound", "outbound", "inbound"]
    assert [(r.direction, r.contact_wa_id, r.media_id) for r in out.media_followups] == [("inbound", USER, "9")]


def test_direction_is_the_thread_users_or_the_business_however_numbers_are_spelled() -> None:
    # A WhatsApp ID may differ from the displayed number (Mexico: 521 for 52): `from` is the
    # business's when it is not the thread's user; `to` comes only with the business's messages.
    mexico = {"display_phone_number": "525512345678", "phone_number_id": PNID}
    user = "5215587654321"
    messages = [
        {"from": "5215512345678", "id": "wamid.biz", "timestamp": 1, "type": "text"},
        {"from": "+52 1 55 8765 4321", "id": "wamid.user", "timestamp": 2, "type": "text"},
        {"to": user, "id": "wamid.to", "timestamp": 3, "type": "text"},
        {"from": user, "id": "wamid.me", "timestamp": 4, "type": "text", "history_context": {"from_me": True}},
    ]
    value = {
        "metadata": mexico,
        "history": [
            {
                "metadata": {"phase": 0, "chunk_order": 1, "progress": 10},
                "threads": [{"id": user, "messages": messages}],
            }
        ],
    }
    rows = norm("history", value).history_chunks[0].messages
    assert [(r.message_id, r.direction, r.contact_wa_id) for r in rows] == [
        ("wamid.biz", "outbound", user),
        ("wamid.user", "inbound", user),
        ("wamid.to", "outbound", user),
        ("wamid.me", "inbound", user),  # `from` says who sent it
    ]


def test_error_codes_as_digit_strings_and_a_null_phone_number() -> None:
    failed = {
        "id": "wamid.s",
        "status": "failed",
        "timestamp": "5",
        "recipient_id": USER,
        "errors": [{"code": "131060"}],
    }
    out = norm("messages", cloud(statuses=[failed]))
    assert [(s.status, s.error_code) for s in out.statuses] == [("failed", 131060)]
    assert [e.code for e in out.errors] == [131060]
    declined = {"metadata": META, "history": [{"errors": [{"code": "2593109", "title": "declined"}]}]}
    assert [e.code for e in norm("history", declined).history_errors] == [2593109]
    for bad in ("-1", "4294967296", "x", 1.5, True, -1, 2**32):
        assert _refused_at("messages", cloud(statuses=[{**failed, "errors": [{"code": bad}]}])) == (
            "$.value.statuses[0].errors[0].code"
        )
    [event] = norm("account_update", {"phone_number": None, "event": "PARTNER_REMOVED"}).account_events
    assert (event.phone_number, event.event) == ("", "PARTNER_REMOVED")


def test_outbound_followup_without_to_has_no_contact() -> None:
    value = {"metadata": META, "messages": [{"from": BUSINESS, "id": "wamid.e", "timestamp": 5, "type": "video"}]}
    [row] = norm("history", value).media_followups
    assert (row.direction, row.contact_wa_id) == ("outbound", "")


def test_unknown_field_and_empty_values() -> None:
    out = norm("phone_number_quality_update", {"metadata": META, "event": "FLAGGED"})
    assert out == Normalized("phone_number_quality_update", PNID, WABA, BUSINESS)
    assert norm("phone_number_quality_update", {"metadata": 3}).phone_number_id == ""
    assert norm("history", {"metadata": META}) == Normalized("history", PNID, WABA, BUSINESS)
    empty_chunk = {"metadata": META, "history": [{"metadata": {"phase": 0, "chunk_order": 0, "progress": 100}}]}
    assert norm("history", empty_chunk).history_chunks[0].messages == []


# ---- malformed input: one typed error, the path of the bad field ------------------------------


def chunk_value(**message_changes: Any) -> dict[str, Any]:
    good: dict[str, Any] = {"from": USER, "id": "wamid.x", "timestamp": "1739230955", "type": "text"}
    message = dict(good)
    for key, new in message_changes.items():
        if new is ...:
            del message[key]
        else:
            message[key] = new
    threads: list[dict[str, Any]] = [
        {"id": USER, "messages": []},
        {"id": USER, "messages": [{**good, "id": f"wamid.{i}"} for i in range(3)]},
    ]
    threads[1]["messages"][2] = message
    return {
        "metadata": META,
        "history": [{"metadata": {"phase": 0, "chunk_order": 1, "progress": 5}, "threads": threads}],
    }


MSG = "$.value.history[0].threads[1].messages[2]"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("history", chunk_value(timestamp="17392309x5"), f"{MSG}.timestamp"),
        ("history", chunk_value(timestamp=...), f"{MSG}.timestamp"),
        ("history", chunk_value(timestamp=1739230955000), f"{MSG}.timestamp"),
        ("history", chunk_value(timestamp=True), f"{MSG}.timestamp"),
        ("history", chunk_value(id=""), f"{MSG}.id"),
        ("history", chunk_value(id=...), f"{MSG}.id"),
        ("history", chunk_value(type=7), f"{MSG}.type"),
        ("history", chunk_value(**{"from": 15550783881}), f"{MSG}.from"),
        ("history", chunk_value(history_context={"status": 2}), f"{MSG}.history_context.status"),
        ("history", chunk_value(history_context="READ"), f"{MSG}.history_context"),
        ("history", chunk_value(errors=[{"title": "no code"}]), f"{MSG}.errors[0].code"),
        (
            "history",
            {"metadata": META, "history": [{"metadata": {"phase": 0, "chunk_order": -1, "progress": 5}}]},
            "$.value.history[0].metadata.chunk_order",
        ),
        (
            "history",
            {"metadata": META, "history": [{"metadata": {"phase": 0, "chunk_order": 1, "progress": 101}}]},
            "$.value.history[0].metadata.progress",
        ),
        ("history", {"metadata": META, "history": [{}]}, "$.value.history[0]"),
        (
            "history",
            {"metadata": META, "history": [{"errors": [{"code": "declined"}]}]},
            "$.value.history[0].errors[0].code",
        ),
        ("history", {"metadata": META, "history": {"threads": []}}, "$.value.history"),
        ("history", {"metadata": META, "messages": [{"id": "w", "timestamp": 1}]}, "$.value.messages[0].type"),
        ("history", {"history": []}, "$.value.metadata"),
        ("history", {"metadata": {"display_phone_number": BUSINESS}}, "$.value.metadata.phone_number_id"),
        (
            "smb_message_echoes",
            {"metadata": META, "message_echoes": [{"from": BUSINESS, "id": "w", "timestamp": 1, "type": "text"}]},
            "$.value.message_echoes[0].to",
        ),
        (
            "messages",
            {"metadata": META, "messages": [{"id": "w", "timestamp": 1, "type": "text"}]},
            "$.value.messages[0].from",
        ),
        (
            "messages",
            {"metadata": META, "statuses": [{"id": "w", "status": "read", "timestamp": "soon"}]},
            "$.value.statuses[0].timestamp",
        ),
        ("messages", {"metadata": META, "statuses": [{"id": "w", "timestamp": 1}]}, "$.value.statuses[0].status"),
        ("messages", {"metadata": META, "errors": ["boom"]}, "$.value.errors[0]"),
        (
            "smb_app_state_sync",
            {
                "metadata": META,
                "state_sync": [
                    {
                        "type": "contact",
                        "contact": {"phone_number": USER},
                        "action": "edit",
                        "metadata": {"timestamp": 1},
                    }
                ],
            },
            "$.value.state_sync[0].action",
        ),
        (
            "smb_app_state_sync",
            {
                "metadata": META,
                "state_sync": [{"type": "contact", "contact": {}, "action": "add", "metadata": {"timestamp": 1}}],
            },
            "$.value.state_sync[0].contact.phone_number",
        ),
        (
            "smb_app_state_sync",
            {
                "metadata": META,
                "state_sync": [{"type": "contact", "contact": {"phone_number": USER}, "action": "add", "metadata": {}}],
            },
            "$.value.state_sync[0].metadata.timestamp",
        ),
        ("account_update", {"phone_number": BUSINESS}, "$.value.event"),
    ],
)
def test_malformed_change_names_the_bad_field(field: str, value: dict[str, Any], path: str) -> None:
    assert _refused_at(field, value) == path


ITEM_LISTS = ("messages", "message_echoes", "statuses", "state_sync")


def _refused_at(field: str, value: dict[str, Any]) -> str:
    """Where normalizing finds `value` malformed: an item of a list is set aside alone (the rest of
    the change is read), anything else refuses the whole change."""
    try:
        out = norm(field, value)
    except ChangeError as caught:
        assert caught.expected and str(caught).startswith(f"{caught.path}: ")
        assert not any(f".{name}[" in caught.path for name in ITEM_LISTS), "one bad item refused the change"
        return caught.path
    (item,) = out.rejected
    assert item.expected and item.error == f"ChangeError: {item.path}: {item.expected}"
    assert any(f".{name}[" in item.path for name in ITEM_LISTS)
    return item.path


def test_a_malformed_message_is_set_aside_and_the_rest_of_its_chunk_is_read() -> None:
    value = chunk_value(timestamp="soon")
    out = norm("history", value)
    (item,) = out.rejected
    assert item.path == f"{MSG}.timestamp"
    assert orjson.loads(item.raw) == value["history"][0]["threads"][1]["messages"][2]
    ((chunk_order, ids),) = [(c.chunk_order, [m.message_id for m in c.messages]) for c in out.history_chunks]
    assert (chunk_order, ids) == (1, ["wamid.0", "wamid.1"])


def test_value_must_be_an_object() -> None:
    with pytest.raises(ChangeError) as caught:
        normalize_value("history", [], waba_id=WABA, entry_time=None, received_at=0.0)  # type: ignore[arg-type]
    assert caught.value.path == "$.value"


# ---- properties --------------------------------------------------------------------------------


def input_messages(field: str, value: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every message object of a value with the contact the spec assigns it ('?' = by direction)."""
    found: list[tuple[dict[str, Any], str]] = []
    if field == "history":
        for item in value.get("history", []):
            for thread in item.get("threads", []):
                found += [(m, thread["id"]) for m in thread["messages"]]
        found += [(m, "?") for m in value.get("messages", [])]
    elif field == "smb_message_echoes":
        found += [(m, m["to"]) for m in value["message_echoes"]]
    elif field == "messages":
        found += [(m, m["from"]) for m in value.get("messages", [])]
    return found


def all_rows(out: Normalized) -> list[MessageRow]:
    return [r for c in out.history_chunks for r in c.messages] + out.media_followups + out.messages


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


@PROPERTY
@given(s.changes(), st.one_of(st.none(), s.unix_seconds))
def test_invariants(change: tuple[str, dict[str, Any]], entry_time: int | None) -> None:
    field, value = change
    before = copy.deepcopy(value)
    out = normalize_value(field, value, waba_id=WABA, entry_time=entry_time, received_at=1_800_000_000.2)
    again = normalize_value(field, value, waba_id=WABA, entry_time=entry_time, received_at=1_800_000_000.2)
    assert out == again  # idempotent
    assert value == before  # the input is not touched

    rows = all_rows(out)
    messages = input_messages(field, value)
    assert len(rows) == len(messages)  # no message lost, none invented
    keys = [(r.phone_number_id, r.message_id) for r in rows]
    assert len(set(keys)) == len(keys)
    business = digits(value.get("metadata", {}).get("display_phone_number", ""))
    for row, (message, contact) in zip(rows, messages, strict=True):
        assert (row.phone_number_id, row.waba_id, row.message_id) == (
            value["metadata"]["phone_number_id"],
            WABA,
            message["id"],
        )
        assert row.sent_at == int(message["timestamp"])
        assert row.type == message["type"]
        assert orjson.loads(row.raw) == message
        assert row.version == message_version(row.type != "media_placeholder", row.status)
        if "from" in message:
            from_business = digits(message["from"]) == business
        else:
            from_business = message.get("history_context", {}).get("from_me") is True
        if field == "smb_message_echoes":
            assert row.direction == "outbound"
        elif field == "messages":
            assert row.direction == "inbound"
        else:
            assert row.direction == ("outbound" if from_business else "inbound")
        if contact == "?":
            contact = message.get("to", "") if from_business else message["from"]
        assert row.contact_wa_id == contact
        status = message.get("history_context", {}).get("status", "") if row.history_phase is not None else ""
        assert row.status == status.lower()
    for chunk in out.history_chunks:
        assert all((r.history_phase, r.history_chunk_order) == (chunk.phase, chunk.chunk_order) for r in chunk.messages)
    for contact_row in out.contacts:
        assert contact_row.version == contact_version(contact_row.changed_at, bool(contact_row.deleted))
        assert not contact_row.deleted or contact_row.full_name == contact_row.first_name == ""
    occurred = entry_time if entry_time is not None else 1_800_000_000
    # An error of a message or a status is dated by it (the same whenever a redelivery arrives).
    own_time = {r.message_id: r.sent_at for r in rows} | {r.message_id: r.status_at for r in out.statuses}
    for e in out.errors + out.history_errors:
        assert e.occurred_at == (own_time[e.message_id] if e.message_id else occurred)
    assert all(e.event_at == occurred for e in out.account_events)


@PROPERTY
@given(s.history_chunk_values(max_threads=3, max_messages=4), st.data())
def test_a_broken_message_is_set_aside_alone_with_its_path(value: dict[str, Any], data: st.DataObject) -> None:
    places = [(t, m) for t, thread in enumerate(value["history"][0]["threads"]) for m in range(len(thread["messages"]))]
    if not places:
        return
    t, m = data.draw(st.sampled_from(places))
    key, bad = data.draw(
        st.sampled_from([("timestamp", "later"), ("timestamp", -1), ("id", ""), ("id", None), ("type", [])])
    )
    message = value["history"][0]["threads"][t]["messages"][m]
    if bad is None:
        del message[key]
    else:
        message[key] = bad
    path = f"$.value.history[0].threads[{t}].messages[{m}].{key}"
    out = norm("history", value)
    assert [item.path for item in out.rejected] == [path]
    kept = sum(len(thread["messages"]) for thread in value["history"][0]["threads"]) - 1
    assert sum(len(chunk.messages) for chunk in out.history_chunks) == kept


@PROPERTY
@given(s.envelope_bodies())
def test_every_routed_change_normalizes(body: bytes) -> None:
    for record in split_delivery(body, "d", 1_800_000_000.0):
        out = normalize_change(decode_record(record.value))
        assert out.field == record.field
        assert out.phone_number_id in (record.key.decode(), "")

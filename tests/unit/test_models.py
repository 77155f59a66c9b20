"""The pydantic view: every reference example parses, extras are kept, errors name the bad field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from schemas.errors import ChangeError, EnvelopeError
from schemas.models import (
    AccountUpdateValue,
    EchoesValue,
    HistoryValue,
    MessagesValue,
    StateSyncValue,
    UnknownChange,
    UnknownValue,
    json_path,
    parse_envelope,
    validate_value,
)
from tests.unit import strategies as s

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "spec"
META = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
VALUE_TYPES = {
    "history": HistoryValue,
    "smb_app_state_sync": StateSyncValue,
    "smb_message_echoes": EchoesValue,
    "account_update": AccountUpdateValue,
    "messages": MessagesValue,
}


@pytest.mark.parametrize("path", sorted(SPEC.glob("*.json")), ids=lambda p: p.stem)
def test_every_reference_fixture_parses(path: Path) -> None:
    envelope = parse_envelope(path.read_bytes())
    assert envelope.object == "whatsapp_business_account"
    [entry] = envelope.entry
    assert entry.id == "102290129340398"
    [change] = entry.changes
    assert isinstance(change.value, VALUE_TYPES[change.field])


def test_history_chunk_typed_view() -> None:
    envelope = parse_envelope((SPEC / "history_approved_example.json").read_bytes())
    value = envelope.entry[0].changes[0].value
    assert isinstance(value, HistoryValue)
    chunk = value.history[0]
    assert chunk.metadata is not None
    assert (chunk.metadata.phase, chunk.metadata.chunk_order, chunk.metadata.progress) == (0, 1, 55)
    first, placeholder, reply = chunk.threads[0].messages
    assert first.timestamp == 1739230955  # digit strings become integers
    assert first.from_ == "15550783881"
    assert first.text is not None and first.text.body.startswith("Here's the info")
    assert first.history_context is not None and first.history_context.status == "READ"
    assert placeholder.type == "media_placeholder" and placeholder.content() is None
    assert reply.content() == reply.text


def test_declined_and_followup_forms() -> None:
    declined = parse_envelope((SPEC / "history_declined_example.json").read_bytes()).entry[0].changes[0].value
    assert isinstance(declined, HistoryValue)
    [error] = declined.history[0].errors
    assert error.code == 2593109 and error.error_data is not None
    assert error.error_data.details == "History sharing is turned off by the business"
    followup = parse_envelope((SPEC / "history_media_followup_example.json").read_bytes()).entry[0].changes[0].value
    assert isinstance(followup, HistoryValue)
    image = followup.messages[0].image
    assert image is not None and (image.id, image.mime_type) == ("24230790383178626", "image/jpeg")


def test_unknown_fields_are_kept() -> None:
    message = {
        "from": "16505551234",
        "id": "wamid.1",
        "timestamp": 1739230955,
        "type": "text",
        "text": {"body": "hi", "x_new": 1},
        "context": {"from": "15550783881", "id": "wamid.0", "forwarded": True},
        "history_context": {"status": "READ", "from_me": False, "x_more": "y"},
        "x_top": [1, 2],
    }
    value = {
        "metadata": META,
        "x_value": True,
        "history": [
            {"metadata": {"phase": 0, "chunk_order": 1, "progress": 1}, "threads": [{"id": "1", "messages": [message]}]}
        ],
    }
    parsed = validate_value("history", value)
    assert isinstance(parsed, HistoryValue)
    assert parsed.model_extra == {"x_value": True}
    kept = parsed.history[0].threads[0].messages[0]
    assert kept.model_extra == {"x_top": [1, 2]}
    assert kept.context is not None and (kept.context.id, kept.context.from_) == ("wamid.0", "15550783881")
    assert kept.history_context is not None and kept.history_context.from_me is False
    assert parsed.model_dump(by_alias=True, exclude_unset=True)["history"][0]["threads"][0]["messages"][0] == message


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("location", {"latitude": 1.0, "longitude": 2.0}),
        ("contacts", [{"name": {"formatted_name": "A"}}]),
        ("template", {"name": "hello"}),
        ("order", {"catalog_id": "1", "product_items": []}),
        ("system", {"body": "b"}),
        ("unsupported", {"type": "edit"}),
        ("interactive", {"type": "button_reply", "button_reply": {"id": "1", "title": "t"}}),
        ("sticker", {"id": "9", "mime_type": "image/webp"}),
        ("brand_new_type", {"anything": 1}),
    ],
)
def test_every_message_type_is_carried(kind: str, content: Any) -> None:
    message = {"from": "1", "id": "wamid.1", "timestamp": "1", "type": kind, kind: content}
    parsed = validate_value("messages", {"metadata": META, "messages": [message]})
    assert isinstance(parsed, MessagesValue)
    carried = parsed.messages[0].content()
    dumped = carried.model_dump(exclude_unset=True) if hasattr(carried, "model_dump") else carried
    assert dumped == content


def test_account_update_and_unknown_values() -> None:
    info = {"reason": "x"}
    parsed = validate_value("account_update", {"event": "PARTNER_REMOVED", "disconnection_info": info})
    assert isinstance(parsed, AccountUpdateValue)
    assert (parsed.phone_number, parsed.disconnection_info) == ("", info)
    unknown = validate_value("some_new_field", {"a": 1})
    assert isinstance(unknown, UnknownValue) and unknown.model_extra == {"a": 1}
    body = orjson.dumps(
        {"object": "o", "entry": [{"id": "1", "changes": [{"field": "some_new_field", "value": {"a": 1}}]}]}
    )
    change = parse_envelope(body).entry[0].changes[0]
    assert isinstance(change, UnknownChange) and change.field == "some_new_field"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{nope", "$"),
        (b"[]", "$"),
        (b'{"entry": []}', "$.object"),
        (b'{"object": "o"}', "$.entry"),
        (b'{"object": "o", "entry": [{"changes": []}]}', "$.entry[0].id"),
        (b'{"object": "o", "entry": [{"id": "1", "time": "x", "changes": []}]}', "$.entry[0].time"),
        (
            b'{"object": "o", "entry": [{"id": "1", "changes": [{"field": "history", "value": {}}]}]}',
            "$.entry[0].changes[0].value.metadata",
        ),
        (
            orjson.dumps(
                {
                    "object": "o",
                    "entry": [
                        {
                            "id": "1",
                            "changes": [
                                {
                                    "field": "messages",
                                    "value": {
                                        "metadata": META,
                                        "statuses": [{"id": "w", "status": "read", "timestamp": 1.5}],
                                    },
                                }
                            ],
                        }
                    ],
                }
            ),
            "$.entry[0].changes[0].value.statuses[0].timestamp",
        ),
        (
            b'{"object": "o", "entry": [{"id": "1", "changes": [{"field": "new", "value": 3}]}]}',
            "$.entry[0].changes[0].value",
        ),
    ],
)
def test_envelope_errors_name_the_bad_field(body: bytes, path: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(body)
    assert caught.value.path == path
    assert caught.value.expected


def test_value_errors_use_change_paths() -> None:
    with pytest.raises(ChangeError) as caught:
        validate_value(
            "smb_message_echoes", {"metadata": META, "message_echoes": [{"id": "w", "timestamp": 1, "type": "text"}]}
        )
    assert caught.value.path == "$.value.message_echoes[0].to"
    assert caught.value.expected == "missing"


def test_json_path_drops_only_the_union_tag() -> None:
    assert (
        json_path(("entry", 0, "changes", 2, "history", "value", "history", 1))
        == "$.entry[0].changes[2].value.history[1]"
    )
    assert json_path(("value", "history", 0, "threads")) == "$.value.history[0].threads"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.envelope_bodies())
def test_generated_envelopes_parse(body: bytes) -> None:
    envelope = parse_envelope(body)
    doc = orjson.loads(body)
    assert [len(e.changes) for e in envelope.entry] == [len(e["changes"]) for e in doc["entry"]]
    for entry, raw_entry in zip(envelope.entry, doc["entry"], strict=True):
        for change, raw_change in zip(entry.changes, raw_entry["changes"], strict=True):
            assert change.field == raw_change["field"]
            expected = VALUE_TYPES.get(change.field, UnknownValue)
            assert isinstance(change.value, expected)

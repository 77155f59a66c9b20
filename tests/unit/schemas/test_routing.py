"""Routing: one Kafka record per change, keyed by phone number ID; malformed bodies refused whole."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import EnvelopeError
from schemas.routing import WrappedChange, change_key, decode_record, split_delivery
from tests.unit import strategies as s

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
META = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def body(*entries: Any) -> bytes:
    return orjson.dumps({"object": "whatsapp_business_account", "entry": list(entries)})


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({"metadata": META}, "106540352242922"),
        ({"metadata": {"phone_number_id": 106540352242922}}, "106540352242922"),
        ({"metadata": {"phone_number_id": ""}}, "waba"),
        ({"metadata": {"phone_number_id": True}}, "waba"),
        ({"metadata": {"phone_number_id": None}}, "waba"),
        ({"metadata": "x"}, "waba"),
        ({"event": "PARTNER_REMOVED"}, "waba"),
        ([1], "waba"),
        (None, "waba"),
    ],
)
def test_change_key(value: Any, key: str) -> None:
    assert change_key(value, "waba") == key


def test_split_delivery_one_record_per_change() -> None:
    records = split_delivery(
        body(
            {
                "id": "w1",
                "time": 1739212624,
                "changes": [
                    {"field": "history", "value": {"metadata": META}},
                    {"field": "account_update", "value": {"event": "PARTNER_REMOVED"}},
                ],
            },
            {"id": 42, "time": "1739212625", "changes": [{"field": "new_thing", "value": {"a": 1}}]},
            {"id": "w3", "changes": []},
        ),
        "delivery-1",
        1_800_000_000.25,
    )
    assert [(r.field, r.key) for r in records] == [
        ("history", b"106540352242922"),
        ("account_update", b"w1"),
        ("new_thing", b"42"),
    ]
    decoded = [decode_record(r.value) for r in records]
    assert decoded[0] == WrappedChange(
        "delivery-1", "w1", 1739212624, 1_800_000_000.25, 0, "history", {"metadata": META}
    )
    assert (decoded[1].change_index, decoded[1].waba_id, decoded[1].value) == (1, "w1", {"event": "PARTNER_REMOVED"})
    assert (decoded[2].change_index, decoded[2].waba_id, decoded[2].entry_time) == (2, "42", 1739212625)


@pytest.mark.parametrize("time", ["²", "١٢", "-5", "1.5", 1.5, True, None, "9" * 5000])
def test_odd_entry_times_become_null(time: Any) -> None:
    [record] = split_delivery(body({"id": "w", "time": time, "changes": [{"field": "f", "value": {}}]}), "d", 0.0)
    assert decode_record(record.value).entry_time is None


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"", "$"),
        (b"{", "$"),
        (b"\xff", "$"),
        (b"[]", "$"),
        (b'"entry"', "$"),
        (b"{}", "$.entry"),
        (b'{"entry": {}}', "$.entry"),
        (b'{"entry": [1]}', "$.entry[0]"),
        (b'{"entry": [{"changes": []}]}', "$.entry[0].id"),
        (b'{"entry": [{"id": "", "changes": []}]}', "$.entry[0].id"),
        (b'{"entry": [{"id": true, "changes": []}]}', "$.entry[0].id"),
        (b'{"entry": [{"id": "w"}]}', "$.entry[0].changes"),
        (b'{"entry": [{"id": "w", "changes": [[]]}]}', "$.entry[0].changes[0]"),
        (b'{"entry": [{"id": "w", "changes": [{"value": {}}]}]}', "$.entry[0].changes[0].field"),
        (b'{"entry": [{"id": "w", "changes": [{"field": ""}]}]}', "$.entry[0].changes[0].field"),
        (b'{"entry": [{"id": "w", "changes": [{"field": "history"}]}]}', "$.entry[0].changes[0].value"),
        (
            b'{"entry": [{"id": "w", "changes": []}, {"id": "v", "changes": [{"field": 1}]}]}',
            "$.entry[1].changes[0].field",
        ),
    ],
)
def test_split_delivery_refuses_non_envelopes(raw: bytes, path: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        split_delivery(raw, "d", 0.0)
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"nope", "$"),
        (b"[]", "$"),
        (b"{}", "$.change"),
        (b'{"change": {"value": {}}}', "$.change"),
        (b'{"change": {"field": "history", "value": []}}', "$.change.value"),
        (b'{"change": {"field": "history", "value": {}}, "received_at": "soon"}', "$.received_at"),
        (b'{"change": {"field": "history", "value": {}}, "received_at": true}', "$.received_at"),
        (b'{"change": {"field": "history", "value": {}}, "change_index": "x"}', "$.change_index"),
        (b'{"change": {"field": "history", "value": {}}, "change_index": [1]}', "$.change_index"),
    ],
)
def test_decode_record_refuses_garbage(raw: bytes, path: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_record(raw)
    assert caught.value.path == path


def test_decode_record_defaults() -> None:
    change = decode_record(b'{"change": {"field": "f", "value": {}}, "delivery_id": null, "waba_id": 7}')
    assert change == WrappedChange("", "7", None, 0.0, 0, "f", {})


@PROPERTY
@given(s.envelope_bodies(max_entries=3), st.floats(0, 4e9, allow_nan=False))
def test_split_then_decode_round_trips(raw: bytes, received_at: float) -> None:
    doc = orjson.loads(raw)
    expected = [(entry, change) for entry in doc["entry"] for change in entry["changes"]]
    records = split_delivery(raw, "delivery", received_at)
    assert len(records) == len(expected)
    for index, (record, (entry, change)) in enumerate(zip(records, expected, strict=True)):
        wrapped = decode_record(record.value)
        assert (wrapped.field, wrapped.value) == (change["field"], change["value"])
        assert (wrapped.waba_id, wrapped.entry_time) == (entry["id"], entry.get("time"))
        assert (wrapped.delivery_id, wrapped.received_at, wrapped.change_index) == ("delivery", received_at, index)
        pnid = change["value"].get("metadata", {}).get("phone_number_id")
        assert record.key == (pnid or entry["id"]).encode()
        assert record.field == change["field"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "object": json_values,
        "entry": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": json_values,
                    "time": json_values,
                    "changes": st.lists(
                        st.fixed_dictionaries({}, optional={"field": json_values, "value": json_values}),
                        max_size=3,
                    ),
                },
            )
            | json_values,
            max_size=3,
        ),
    },
)


@PROPERTY
@given(st.one_of(st.binary(max_size=64), json_values.map(orjson.dumps), envelope_like.map(orjson.dumps)))
def test_split_delivery_returns_records_or_an_envelope_error(raw: bytes) -> None:
    try:
        records = split_delivery(raw, "d", 1.0)
    except EnvelopeError:
        return
    for record in records:
        try:
            decode_record(record.value)
        except EnvelopeError as exc:
            assert exc.path == "$.change.value"  # a non-object value: dead-lettered downstream


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(("delivery_id", "waba_id", "entry_time", "received_at", "change_index", "change")), json_values
    )
)
def test_decode_record_returns_a_change_or_an_envelope_error(doc: dict[str, Any]) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_record(orjson.dumps(doc))


def test_a_single_change_delivery_keeps_its_bytes_as_signed() -> None:
    # Escapes the platform uses and orjson would not reproduce: the record must hold them as sent.
    body = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":'
        b'"smb_message_echoes","value":{"metadata":{"phone_number_id":"106540352242922"},'
        b'"message_echoes":[{"text":{"body":"caf\\u00e9 \\/ ok"}}]}}]}]}'
    )
    (record,) = split_delivery(body, "d1", 1.5)
    assert body in record.value
    change = decode_record(record.value)
    assert (change.field, change.delivery_id, change.change_index) == ("smb_message_echoes", "d1", 0)
    assert change.value["message_echoes"][0]["text"]["body"] == "café / ok"


def test_several_changes_are_found_again_by_their_index() -> None:
    body = orjson.dumps(
        {
            "entry": [
                {"id": "1", "changes": [{"field": "a", "value": {"n": 0}}, {"field": "b", "value": {"n": 1}}]},
                {"id": "2", "changes": [{"field": "c", "value": {"n": 2}}]},
            ]
        }
    )
    decoded = [decode_record(r.value) for r in split_delivery(body, "d", 0.0)]
    assert [(c.field, c.value["n"], c.change_index, c.waba_id) for c in decoded] == [
        ("a", 0, 0, "1"),
        ("b", 1, 1, "1"),
        ("c", 2, 2, "2"),
    ]


def _echo_body(text_json: bytes) -> bytes:
    return (
        b'{"entry":[{"id":"1","changes":[{"field":"smb_message_echoes","value":{"metadata":'
        b'{"phone_number_id":"2"},"message_echoes":[{"text":{"body":' + text_json + b"}}]}}]}]}"
    )


@pytest.mark.parametrize(
    ("text_json", "text"),
    [
        (b'"cut \\ud83d"', "cut \ufffd"),  # an emoji's high half without its low half
        (b'"\\ude00 alone"', "\ufffd alone"),
        (b'"\\ud83d\\ud83d\\ude00"', "\ufffd\U0001f600"),
        (b'"\\\\ud83d"', "\\ud83d"),  # an escaped backslash, then text: not an escape
        (b'"\\\\\\ud83d"', "\\\ufffd"),
        (b'"caf\xe9 \xff"', "caf\ufffd \ufffd"),  # Latin-1 and stray bytes: not UTF-8
    ],
)
def test_text_orjson_refuses_is_taken_with_replacement_characters(text_json: bytes, text: str) -> None:
    body = _echo_body(text_json)
    (record,) = split_delivery(body, "d", 0.0)
    assert body in record.value  # still the bytes as signed
    assert decode_record(record.value).value["message_echoes"][0]["text"]["body"] == text


def test_json_that_is_not_json_is_still_refused_after_the_repair() -> None:
    with pytest.raises(EnvelopeError) as caught:
        split_delivery(_echo_body(b'"\\ud83d" oops'), "d", 0.0)
    assert caught.value.path == "$"


@PROPERTY
@given(st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=12).map("".join))
def test_any_text_escaped_as_json_reads_back_with_lone_surrogates_replaced(text: str) -> None:
    body = _echo_body(json.dumps(text).encode())  # ASCII, every surrogate a \u escape
    (record,) = split_delivery(body, "d", 0.0)
    # What a UTF-16 reader makes of it: pairs joined, halves alone replaced.
    expected = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    assert decode_record(record.value).value["message_echoes"][0]["text"]["body"] == expected

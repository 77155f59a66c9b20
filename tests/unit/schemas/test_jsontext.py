"""Deep JSON: what the ingest accepts (`split_delivery`), the worker reads back and processes; an item
nested deeper than a `raw` column holds is its own dead letter, its siblings land (issue 26, defect 6)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import jsontext
from schemas.errors import EnvelopeError
from schemas.routing import decode_record, split_delivery
from streams.prepare import prepare
from streams.processor import Processor, Record
from tests.doubles import DictStore

PNID = "106540352242922"
# Levels above a history message in a delivery: body, entry[], entry, changes[], change, value,
# history[], chunk, threads[], thread, messages[].
ABOVE_MESSAGE = 11


def nested(levels: int, leaf: Any = 1) -> Any:
    """`leaf` inside `levels` arrays."""
    for _ in range(levels):
        leaf = [leaf]
    return leaf


def depth(value: Any) -> int:
    """Levels of nesting of a decoded JSON value (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if type(item) is dict or type(item) is list:
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in (item.values() if type(item) is dict else item))
    return deepest


def message(mid: str, extra: Any = None) -> dict[str, Any]:
    m: dict[str, Any] = {"from": "16505551234", "id": mid, "timestamp": "1739230955", "type": "text",
                         "text": {"body": mid}}  # fmt: skip
    if extra is not None:
        m["text"]["extra"] = extra
    return m


def history_change(messages: list[dict[str, Any]]) -> dict[str, Any]:
    chunk = {"metadata": {"phase": 0, "chunk_order": 1, "progress": 100},
             "threads": [{"id": "16505551234", "messages": messages}]}  # fmt: skip
    value = {"messaging_product": "whatsapp", "history": [chunk],
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID}}  # fmt: skip
    return {"field": "history", "value": value}


def body_of(*changes: dict[str, Any]) -> bytes:
    # jsontext.dumps: orjson.dumps stops at ROW_DEPTH.
    return jsontext.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": list(changes)}]})


def with_deep_message(message_depth: int) -> dict[str, Any]:
    """A chunk of three messages, the middle one nested `message_depth` levels deep."""
    # The message object is a level, `text` another, then the arrays.
    deep = message("wamid.deep", nested(message_depth - 2))
    return history_change([message("wamid.a"), deep, message("wamid.b")])


def test_the_limits_are_orjsons() -> None:
    assert orjson.loads(orjson.dumps(nested(jsontext.ROW_DEPTH)))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(jsontext.ROW_DEPTH + 1))
    text = b"[" * jsontext.MAX_DEPTH + b"]" * jsontext.MAX_DEPTH
    assert depth(orjson.loads(text)) == jsontext.MAX_DEPTH
    with pytest.raises(orjson.JSONDecodeError) as refused:
        orjson.loads(b"[" + text + b"]")
    assert jsontext.too_deep(refused.value)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False,
                    allow_infinity=False) | st.text(),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3)),
       st.integers(0, jsontext.MAX_DEPTH + 2))  # fmt: skip
def test_dumps_writes_any_depth_the_ingest_accepts(value: Any, levels: int) -> None:
    deep = nested(levels, value)
    written = jsontext.dumps(deep)
    if depth(deep) <= jsontext.ROW_DEPTH:
        assert written == orjson.dumps(deep)
    # The same value: read back a level at a time (orjson.loads itself stops at MAX_DEPTH).
    inner = written
    for _ in range(levels):
        assert inner.startswith(b"[") and inner.endswith(b"]")
        inner = inner[1:-1]
    assert orjson.loads(inner) == value


def test_dumps_of_a_hostile_body_takes_about_what_reading_it_takes() -> None:
    # Thousands of 1000-deep arrays: retrying orjson a level lower each time took 48 s here.
    text = b"[" + b",".join([b"[" * 1000 + b"1" + b"]" * 1000] * 2000) + b"]"
    value = {"change": orjson.loads(text)}
    started = time.perf_counter()
    written = jsontext.dumps(value)
    took = time.perf_counter() - started
    assert written == b'{"change":' + text + b"}"
    assert took < 5.0


@settings(max_examples=40, deadline=None)
@given(st.integers(3, jsontext.MAX_DEPTH - ABOVE_MESSAGE + 3), st.booleans())
def test_what_the_ingest_accepts_the_worker_processes_and_only_a_too_deep_message_is_rejected(
    message_depth: int, two_changes: bool
) -> None:
    change = with_deep_message(message_depth)
    body = body_of(change, history_change([message("wamid.c")])) if two_changes else body_of(change)
    try:
        recs = split_delivery(body, "d", 1739230955.0)
    except EnvelopeError as exc:
        assert str(exc) == f"$: nested deeper than {jsontext.MAX_DEPTH} levels"
        assert message_depth + ABOVE_MESSAGE > jsontext.MAX_DEPTH
        return
    assert message_depth + ABOVE_MESSAGE <= jsontext.MAX_DEPTH
    prepared = prepare(recs[0].value)
    assert prepared.error == ""
    assert prepared.normalized is not None
    rows = [row.message_id for chunk in prepared.chunks for row in chunk.rows]
    rejected = prepared.normalized.rejected
    if message_depth <= jsontext.ROW_DEPTH:
        assert rows == ["wamid.a", "wamid.deep", "wamid.b"] and rejected == []
    else:
        assert rows == ["wamid.a", "wamid.b"]
        [bad] = rejected
        assert bad.path == "$.value.history[0].threads[0].messages[1]"
        assert bad.expected.startswith(f"expected at most {jsontext.ROW_DEPTH} levels of nesting")
        assert orjson.loads(bad.raw) == change["value"]["history"][0]["threads"][0]["messages"][1]
    if two_changes:
        assert [r.message_id for c in prepare(recs[1].value).chunks for r in c.rows] == ["wamid.c"]


def test_the_ingest_refuses_a_delivery_deeper_than_orjson_reads_and_accepts_one_at_the_limit() -> None:
    at_limit = body_of(with_deep_message(jsontext.MAX_DEPTH - ABOVE_MESSAGE))
    over = body_of(with_deep_message(jsontext.MAX_DEPTH - ABOVE_MESSAGE + 1))
    [record] = split_delivery(at_limit, "d", 0.0)
    # One level deeper as a record (its wrapper), yet read back.
    assert decode_record(record.value).field == "history"
    with pytest.raises(EnvelopeError, match=f"nested deeper than {jsontext.MAX_DEPTH} levels"):
        split_delivery(over, "d", 0.0)


def test_a_message_nested_500_deep_is_one_dead_letter_and_its_siblings_land() -> None:
    [record] = split_delivery(body_of(with_deep_message(500)), "d", 1739230955.0)
    processor = Processor(DictStore(), history_flush_timeout_s=600, media_pending_ttl_s=3600)
    out = processor.process(Record("coex.history", 0, 7, PNID.encode(), record.value), 1739230960.0)
    assert sorted(row.message_id for row in out.rows["messages"]) == ["wamid.a", "wamid.b"]
    [letter] = out.rows["dead_letters"]
    assert letter.error.startswith("ChangeError: $.value.history[0].threads[0].messages[1]: expected at most 254")
    assert orjson.loads(letter.raw)["id"] == "wamid.deep"
    assert out.rows["history_sync"][0].messages_received == 2

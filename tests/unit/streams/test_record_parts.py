"""Records the worker produces fit the topics' limit: a release or a held chunk too large for one
record is split at message boundaries, every message once, in order (streams/prepare.py)."""

from __future__ import annotations

import itertools
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.routing import split_delivery
from schemas.rows import MessageRow
from streams import codec
from streams.prepare import join_arrays, json_parts, messages_json
from streams.processor import HELD, Processor, Record, held_chunks, merge_unordered, release_record
from tests.doubles import DictStore

PNID = "106540352242922"
WABA = "102290129340398"


def _row(i: int, text: str) -> MessageRow:
    raw = orjson.dumps({"id": f"wamid.{i}", "type": "text", "text": {"body": text}}).decode()
    return MessageRow(
        PNID, WABA, f"wamid.{i}", "16505551234", "inbound", "history", "text", text, "", "", "read",
        1739212624 + i, 0, 1, raw, "", None, 1,
    )  # fmt: skip


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


def _ids(arrays: list[bytes]) -> list[str]:
    return [m["message_id"] for array in arrays for m in orjson.loads(array)]


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, max_size=60), st.integers(min_value=2, max_value=4000))
def test_parts_hold_every_message_once_in_order_each_under_the_bound(bodies: list[str], bound: int) -> None:
    rows = [_row(i, text) for i, text in enumerate(bodies)]
    parts = json_parts(rows, bound)
    whole = messages_json(rows)
    assert [m for part in parts for m in orjson.loads(part)] == orjson.loads(whole)
    for part in parts:
        assert len(part) <= bound or len(orjson.loads(part)) == 1  # one message over it: alone
    if len(whole) <= bound:
        assert parts == [whole]  # the fast path: the JSON as it was, nothing else done


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(texts, max_size=5), max_size=20), st.integers(min_value=2, max_value=3000))
def test_joined_arrays_hold_every_element_once_in_order_each_under_the_bound(
    batches: list[list[str]], bound: int
) -> None:
    counter = itertools.count()
    arrays = [messages_json([_row(next(counter), text) for text in batch]) for batch in batches]
    joined = join_arrays(arrays, bound)
    assert _ids(joined) == _ids(arrays)
    for array in joined:
        assert array not in (b"[]", b"") and orjson.loads(array)
        assert len(array) <= bound or array in arrays  # an array over the bound is left alone
    if sum(len(a) for a in arrays) + len(arrays) <= bound and _ids(arrays):
        assert len(joined) == 1


def test_a_batch_of_unordered_releases_over_the_bound_is_several_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.prepare.PART_BYTES", 1000)
    releases = [
        release_record(PNID, WABA, "media", None, None, False, messages_json([_row(i, "x" * 100)])) for i in range(30)
    ]
    merged = merge_unordered(releases)
    assert len(merged) > 1
    assert all(len(p.messages) <= 1000 for p in merged)
    assert [m["message_id"] for p in merged for m in orjson.loads(p.payload())["messages"]] == [
        f"wamid.{i}" for i in range(30)
    ]


def _history(order: int, count: int, progress: int) -> bytes:
    messages = [
        {"from": "16505551234", "id": f"wamid.c{order}.{i}", "timestamp": str(1739230000 + i), "type": "text",
         "text": {"body": f"{i} " + "y" * 150}} for i in range(count)
    ]  # fmt: skip
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "history": [{"metadata": {"phase": 0, "chunk_order": order, "progress": progress},
                     "threads": [{"id": "16505551234", "messages": messages}]}],
    }  # fmt: skip
    body = orjson.dumps({"object": "whatsapp_business_account",
                         "entry": [{"id": WABA, "changes": [{"field": "history", "value": value}]}]})  # fmt: skip
    [record] = split_delivery(body, "d", 1739230960.0)
    return record.value


def test_a_chunk_over_the_bound_is_held_in_parts_and_released_as_numbered_records_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bound = 4000
    monkeypatch.setattr("streams.prepare.PART_BYTES", bound)
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    # Chunk 2 first: held, in parts, each its own key and under the bound.
    held = processor.process(Record("coex.history", 0, 0, PNID.encode(), _history(2, 60, 50)), now=1.0)
    assert held.dead_letters == [] and held.published == []
    store.apply(held.writes)
    values = store.tables[HELD]
    assert len(values) > 2 and all(len(codec.unpack(v)) <= bound for k, v in values.items() if k.count("|") == 3)
    assert held_chunks(values) == 1
    # Chunk 1 releases both, chunk 2 as several records, `part` of `parts`, its messages in order.
    out = processor.process(Record("coex.history", 0, 1, PNID.encode(), _history(1, 5, 100)), now=2.0)
    assert out.dead_letters == []
    store.apply(out.writes)
    assert store.tables[HELD] == {}
    docs = [orjson.loads(p.payload()) for p in out.published if p.kind == "history"]
    assert all(len(p.payload()) <= bound + 200 for p in out.published)
    assert docs[0]["chunk_order"] == 1 and "part" not in docs[0]
    rest = docs[1:]
    assert [(d["chunk_order"], d["part"], d["parts"]) for d in rest] == [
        (2, i, len(rest)) for i in range(1, len(rest) + 1)
    ]
    assert [m["message_id"] for d in rest for m in d["messages"]] == [f"wamid.c2.{i}" for i in range(60)]


def test_a_held_chunk_stored_before_parts_existed_is_released_as_it_was() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    store.apply(processor.process(Record("coex.history", 0, 0, PNID.encode(), _history(2, 3, 50)), now=1.0).writes)
    assert list(store.tables[HELD]) == [f"{PNID}|0|2"]  # one part: the key and value as before
    out = processor.process(Record("coex.history", 0, 1, PNID.encode(), _history(1, 3, 100)), now=2.0)
    docs = [orjson.loads(p.payload()) for p in out.published if p.kind == "history"]
    assert [(d["chunk_order"], "part" in d) for d in docs] == [(1, False), (2, False)]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=80), st.integers(min_value=600, max_value=20_000), st.booleans())
def test_any_chunk_held_or_not_is_released_whole_in_order_in_records_under_the_bound(
    count: int, bound: int, held_first: bool
) -> None:
    with patch("streams.prepare.PART_BYTES", bound):
        store = DictStore()
        processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
        bodies = [_history(2, count, 80), _history(1, 2, 40)]
        published = []
        for offset, body in enumerate(bodies if held_first else bodies[::-1]):
            out = processor.process(Record("coex.history", 0, offset, PNID.encode(), body), now=1.0 + offset)
            assert out.dead_letters == []
            store.apply(out.writes)
            published += [p for p in out.published if p.kind == "history"]
        assert store.tables[HELD] == {}
        docs = [orjson.loads(p.payload()) for p in published]
        assert [m["message_id"] for d in docs for m in d["messages"]] == [
            *(f"wamid.c1.{i}" for i in range(2)),
            *(f"wamid.c2.{i}" for i in range(count)),
        ]
        for p, doc in zip(published, docs, strict=True):
            one = len(doc["messages"]) == 1
            assert one or len(p.payload()) - len(p.head()) <= bound

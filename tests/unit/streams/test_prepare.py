"""`prepare`: a record's stateless part, the same whether done in place or (encoded) by the helper."""

from __future__ import annotations

import orjson
import pyarrow as pa
from hypothesis import given, settings

from schemas.normalize import PLACEHOLDER, normalize_change
from schemas.routing import decode_record, split_delivery
from schemas.rows import MessageRow
from streams import codec
from streams.prepare import messages_json, prepare
from tests.unit.strategies import envelope_bodies


def _rows(table: pa.Table | None) -> list[MessageRow]:
    return [] if table is None else [MessageRow(**row) for row in table.to_pylist()]


@settings(max_examples=80, deadline=None)
@given(envelope_bodies())
def test_a_prepared_chunk_holds_exactly_its_messages_in_place_and_encoded(body: bytes) -> None:
    for record in split_delivery(body, "delivery", 1_700_000_000.0):
        in_place, encoded = prepare(record.value), prepare(record.value, encode=True)
        assert in_place.error == encoded.error
        if in_place.error:  # a field coex does not process: a dead letter either way
            assert in_place.error.startswith("UnsupportedChange") and encoded.normalized is None
            continue
        assert in_place.normalized == encoded.normalized
        assert in_place.normalized is not None and in_place.normalized.history_chunks == []
        chunks = normalize_change(decode_record(record.value)).history_chunks
        assert len(in_place.chunks) == len(encoded.chunks) == len(chunks)
        for chunk, a, b in zip(chunks, in_place.chunks, encoded.chunks, strict=True):
            messages = chunk.messages
            for p in (a, b):
                assert (p.phase, p.chunk_order, p.progress) == (chunk.phase, chunk.chunk_order, chunk.progress)
                assert p.count == len(messages)
                assert p.first_id == (messages[0].message_id if messages else "")
                assert p.newest == max((m.sent_at for m in messages), default=0)
                assert p.placeholders == [m for m in messages if m.type == PLACEHOLDER]
            assert [codec.unpack(x) for x in a.packed] == [codec.unpack(x) for x in b.packed]
            assert [codec.unpack(x) for x in a.packed] == [messages_json(messages)]  # one part: far under the bound
            assert a.encoded is None
            others = [m for m in messages if m.type != PLACEHOLDER]
            assert a.rows == others
            # Encoded: rows with a media id stay rows (the writer reads their keys), the rest is Arrow.
            assert b.rows == [m for m in others if m.media_id]
            assert _rows(b.encoded) == [m for m in others if not m.media_id]


def test_an_unreadable_record_is_an_error_not_an_exception() -> None:
    for value in (b"\xff not json", b'{"change": {"field": "history", "value": {"history": 7}}}'):
        prepared = prepare(value, encode=True)
        assert prepared.normalized is None and prepared.chunks == []
        assert prepared.error.split(":")[0] in ("EnvelopeError", "ChangeError")


def test_encoded_leaves_rows_with_a_media_id_and_placeholders_as_rows() -> None:
    """A chunk may carry a media message with its id; the writer reads the keys of such rows."""
    messages = [
        {"from": "16505551234", "id": "wamid.t", "timestamp": "1739230000", "type": "text", "text": {"body": "hi"}},
        {"from": "16505551234", "id": "wamid.i", "timestamp": "1739230001", "type": "image",
         "image": {"id": "media-1", "mime_type": "image/jpeg"}},
        {"from": "16505551234", "id": "wamid.p", "timestamp": "1739230002", "type": "media_placeholder"},
    ]  # fmt: skip
    chunk = {"metadata": {"phase": 0, "chunk_order": 1, "progress": 10},
             "threads": [{"id": "16505551234", "messages": messages}]}  # fmt: skip
    value = {"metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
             "history": [chunk]}  # fmt: skip
    body = orjson.dumps({"entry": [{"id": "102290129340398", "changes": [{"field": "history", "value": value}]}]})
    (record,) = split_delivery(body, "delivery", 1_700_000_000.0)
    (prepared,) = prepare(record.value, encode=True).chunks
    assert [row.message_id for row in _rows(prepared.encoded)] == ["wamid.t"]
    assert [row.message_id for row in prepared.rows] == ["wamid.i"]
    assert [row.message_id for row in prepared.placeholders] == ["wamid.p"]

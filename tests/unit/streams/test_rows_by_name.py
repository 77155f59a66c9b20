"""Rows are read by column name: a column added to MessageRow, wherever it goes, shifts no other."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import orjson

from schemas.rows import MessageRow
from sinks.encode import arrow_schema, rows_to_arrow
from streams.prepare import messages_json

ROWS = [
    MessageRow(
        "pn1", "w1", "m1", "c1", "inbound", "history", "image", "caption", "mid", "image/jpeg", "read",
        1700000000, 1, 4, '{"id":"m1"}', "m0", 131060, 9,
    ),
    MessageRow(
        "pn1", "w1", "m2", "c1", "outbound", "cloud_api", "text", "hi", "", "", "sent",
        1700000001, None, None, '{"id":"m2"}', "", None, 3,
    ),
]  # fmt: skip

# MessageRow with a column added in the middle.
Wider = namedtuple("Wider", [*MessageRow._fields[:5], "reaction", *MessageRow._fields[5:]])  # type: ignore[misc]


def _wider(row: MessageRow) -> Any:
    return Wider(reaction="thumbs up", **row._asdict())


def test_messages_json_reads_fields_by_name() -> None:
    assert orjson.loads(messages_json([_wider(row) for row in ROWS])) == orjson.loads(messages_json(ROWS))


def test_arrow_columns_are_the_row_types_fields_in_order() -> None:
    assert arrow_schema(MessageRow).names == list(MessageRow._fields)
    table = rows_to_arrow(MessageRow, ROWS)
    assert table.column_names == list(MessageRow._fields)
    assert table.to_pylist() == [row._asdict() for row in ROWS]

"""Rows -> Arrow tables (sinks/encode.py) and the in-place insert statement (sinks/engine.py)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.normalize import normalize_value
from sinks.encode import arrow_schema, columns_to_arrow, rows_to_arrow, serialize
from sinks.engine import arrow_insert_sql, setting_literal
from sinks.tables import ROW_TYPES, SinkKeyRow
from tests.unit.strategies import changes

WABA = "102290129340398"


@pytest.mark.parametrize("row_type", [*ROW_TYPES.values(), SinkKeyRow], ids=lambda t: t.__name__)
def test_every_row_type_has_an_arrow_schema_in_column_order(row_type: Any) -> None:
    assert arrow_schema(row_type).names == list(row_type._fields)


def read_back(table: pa.Table) -> list[tuple[Any, ...]]:
    decoded = pa.ipc.open_stream(serialize(table)).read_all()
    return [tuple(row.values()) for row in decoded.to_pylist()]


@settings(max_examples=150, deadline=None)
@given(changes(), st.one_of(st.none(), st.integers(1_600_000_000, 1_900_000_000)))
def test_normalized_rows_survive_the_arrow_encoding(change: tuple[str, dict[str, Any]], entry_time: int | None) -> None:
    field, value = change
    out = normalize_value(field, value, waba_id=WABA, entry_time=entry_time, received_at=1_800_000_000.2)
    tables: dict[str, list[Any]] = {
        "messages": [*out.messages, *out.media_followups, *(m for c in out.history_chunks for m in c.messages)],
        "contacts": list(out.contacts),
        "message_statuses": list(out.statuses),
        "account_events": list(out.account_events),
        "webhook_errors": [*out.errors, *out.history_errors],
    }
    for table, rows in tables.items():
        if rows:
            assert read_back(rows_to_arrow(ROW_TYPES[table], rows)) == [tuple(row) for row in rows], table


def test_a_column_of_nulls_or_empty_arrays_keeps_its_type() -> None:
    row_type = ROW_TYPES["history_sync"]
    table = rows_to_arrow(row_type, [row_type("p", "w", "in_progress", 0, [], 0, 0, None, 1, 1)])
    assert table.schema.field("phases_complete").type == pa.list_(pa.int64())
    assert table.schema.field("error_code").type == pa.int64()


def test_a_value_of_another_type_fails_the_batch() -> None:
    row_type = ROW_TYPES["contacts"]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        rows_to_arrow(row_type, [row_type("p", "c", "n", "f", "zero", 1, "w", 1)])


def test_columns_encode_like_rows() -> None:
    keys = [["t", "t"], ["p1", "p2"], ["m1", "m2"]]
    assert read_back(columns_to_arrow(SinkKeyRow, keys)) == [("t", "p1", "m1"), ("t", "p2", "m2")]


def test_the_in_place_insert_quotes_its_settings() -> None:
    sql = arrow_insert_sql("coex", "messages", ["message_id", "version"], {"a": 0, "b": "it's a \\ token"})
    assert sql == (
        "INSERT INTO coex.messages (message_id, version) SETTINGS a = 0, b = 'it\\'s a \\\\ token' "
        "SELECT * FROM Python(coex_arrow_insert)"
    )
    assert setting_literal(True) == "1"
    with pytest.raises(TypeError):
        setting_literal(None)
    with pytest.raises(ValueError):
        arrow_insert_sql("coex", "messages; DROP TABLE x", ["a"], {})

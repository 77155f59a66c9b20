"""Rows -> Arrow: the fastest insert path measured (bench/sink_insert.py).

pyarrow turns the row tuples into one struct array in C++ (no per-value Python work, no
transposing). The embedded engine reads that table in place (sinks/engine.py); a server and the
owner's endpoint get it as an ArrowStream payload. ClickHouse converts Arrow types to the table's
on insert (int64 -> UInt8/DateTime, string -> LowCardinality(String), double -> DateTime64,
null -> Nullable). A row of the wrong length or with a value of another type fails the batch;
`rows_to_arrow_isolating` then tells those rows apart.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from functools import cache
from typing import Any

import pyarrow as pa

FORMAT = "ArrowStream"
# lz4 buffers: a sixth of the bytes to hash, spool and send, for no measurable insert cost.
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64()}

RowType = type[tuple[Any, ...]]


@cache
def arrow_schema(row_type: RowType) -> pa.Schema:
    """The Arrow schema of a row NamedTuple, from its annotations: a batch's types never depend on
    its values (a column of NULLs or of empty arrays has no type to infer)."""
    hints = typing.get_type_hints(row_type)
    return pa.schema([pa.field(name, _arrow_type(hints[name])) for name in row_type._fields])  # type: ignore[attr-defined]


def _arrow_type(hint: Any) -> pa.DataType:
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _arrow_type(args[0])  # T | None: Arrow fields are nullable
    if origin is list:
        return pa.list_(_arrow_type(args[0]))
    if hint in _SCALARS:
        return _SCALARS[hint]
    raise TypeError(f"no Arrow type for {hint!r}")


def rows_to_arrow(row_type: RowType, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """pyarrow converts the row tuples to one struct array in C++: no per-value Python work."""
    schema = arrow_schema(row_type)
    return pa.Table.from_struct_array(pa.array(rows, type=pa.struct(schema)))


# What pyarrow raises for a value its column's type cannot take (a str for an int, an int past 64
# bits, bytes that are not UTF-8, a row of the wrong length).
ENCODE_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def rows_to_arrow_isolating(
    row_type: RowType, rows: Sequence[Sequence[Any]]
) -> tuple[pa.Table, list[tuple[Sequence[Any], str]]]:
    """The rows that encode, as one table in their order, and each row that does not with why. One
    batched encode when every row encodes (the fast path); row by row only once that failed."""
    try:
        return rows_to_arrow(row_type, rows), []
    except ENCODE_ERRORS:
        good: list[Sequence[Any]] = []
        bad: list[tuple[Sequence[Any], str]] = []
    for row in rows:
        try:
            rows_to_arrow(row_type, [row])
        except ENCODE_ERRORS as exc:
            bad.append((row, f"{type(exc).__name__}: {exc}"))
        else:
            good.append(row)
    return rows_to_arrow(row_type, good), bad


def columns_to_arrow(row_type: RowType, columns: Sequence[Sequence[Any]]) -> pa.Table:
    return pa.table(list(columns), schema=arrow_schema(row_type))


def serialize(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as stream:
        stream.write_table(table)
    payload: bytes = sink.getvalue().to_pybytes()
    return payload


def deserialize(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()

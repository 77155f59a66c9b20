"""Rows pyarrow cannot encode are told apart from the rest (sinks/encode.py rows_to_arrow_isolating)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rows import DeadLetterRow
from sinks.encode import rows_to_arrow_isolating

# Values a DeadLetterRow's `offset` (int64) cannot take, with what pyarrow says.
POISON: list[Any] = ["42", 2**63, -(2**63) - 1, 1.5j, b"\x00"]


def letter(offset: Any) -> DeadLetterRow:
    return DeadLetterRow("coex.history", 0, offset, "k", "e", "{}", 1.0, 0)


@settings(deadline=None)  # the first example pays pyarrow's warm-up on a shared machine
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(POISON)), max_size=60))
def test_the_rows_that_encode_stay_in_order_and_each_other_one_comes_back_with_why(offsets: list[Any]) -> None:
    rows = [letter(offset) for offset in offsets]
    data, bad = rows_to_arrow_isolating(DeadLetterRow, rows)
    good = [row for row in rows if type(row.offset) is int and -(2**63) <= row.offset < 2**63]
    assert data["offset"].to_pylist() == [row.offset for row in good]
    assert [row for row, _ in bad] == [row for row in rows if row not in good]
    assert all(reason.split(":")[0] in {"ArrowInvalid", "ArrowTypeError", "OverflowError"} for _, reason in bad)


def test_a_row_of_the_wrong_length_is_refused_too() -> None:
    data, bad = rows_to_arrow_isolating(DeadLetterRow, [letter(1), ("short",), letter(2)])
    assert data["offset"].to_pylist() == [1, 2]
    assert bad == [(("short",), "ArrowInvalid: Tuple size must be equal to number of struct fields")]

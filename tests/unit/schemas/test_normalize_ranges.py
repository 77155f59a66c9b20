"""Integers bound for narrow columns are checked where they are read (schemas/normalize.py): a value
the column cannot hold (or the platform never sends) is an error of its item, never wrapped by
ClickHouse (a phase 300 was stored as 44)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ChangeError
from schemas.normalize import MAX_PHASE, MAX_UINT32, normalize_value

PNID, USER = "106540352242922", "16505551234"
META = {"display_phone_number": "15550783881", "phone_number_id": PNID}
MESSAGE = {"from": USER, "id": "wamid.x", "timestamp": "1739230955", "type": "text", "text": {"body": "hi"}}

# A chunk's metadata: spec ranges (phase 0, 1, 2; progress 0..100) and the columns' (UInt32).
CHUNK_RANGES = {"phase": MAX_PHASE, "chunk_order": MAX_UINT32, "progress": 100}


def chunk(**metadata: Any) -> dict[str, Any]:
    meta = {"phase": 1, "chunk_order": 3, "progress": 40, **metadata}
    return {"metadata": META, "history": [{"metadata": meta, "threads": [{"id": USER, "messages": [MESSAGE]}]}]}


def outside(high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (high + 1, 300, 2**64 - 1, -1) if not 0 <= v <= high]
    return st.one_of(st.integers(max_value=-1), st.integers(min_value=high + 1), st.sampled_from(edges))


def norm(field: str, value: dict[str, Any]) -> Any:
    return normalize_value(field, value, waba_id="w", entry_time=1739230990, received_at=1739230991.0)


@pytest.mark.parametrize("name", sorted(CHUNK_RANGES))
@given(data=st.data())
def test_a_chunk_whose_metadata_no_column_holds_is_refused_whole(name: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(outside(CHUNK_RANGES[name]), outside(CHUNK_RANGES[name]).map(str)))
    if isinstance(value, str) and value.startswith("-"):
        value = int(value)  # "-1" is no digit string: refused as a string, not as a number
    with pytest.raises(ChangeError) as refused:
        norm("history", chunk(**{name: value}))
    assert refused.value.path == f"$.value.history[0].metadata.{name}"


@pytest.mark.parametrize("name", sorted(CHUNK_RANGES))
@given(data=st.data())
def test_a_chunk_within_the_ranges_lands_as_sent(name: str, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, CHUNK_RANGES[name]))
    (landed,) = norm("history", chunk(**{name: value})).history_chunks
    assert getattr(landed, name) == value
    (row,) = landed.messages
    assert (row.history_phase, row.history_chunk_order) == (landed.phase, landed.chunk_order)


@given(outside(MAX_UINT32))
def test_an_error_code_no_uint32_holds_makes_its_message_a_dead_letter_and_the_rest_lands(code: int) -> None:
    bad = {**MESSAGE, "id": "wamid.bad", "errors": [{"code": code, "title": "t"}]}
    value = {"metadata": META, "messages": [MESSAGE, bad]}
    out = norm("messages", value)
    assert [row.message_id for row in out.messages] == ["wamid.x"]
    (rejected,) = out.rejected
    assert rejected.path == "$.value.messages[1].errors[0].code"


@given(outside(MAX_UINT32))
def test_a_status_whose_error_code_no_uint32_holds_is_a_dead_letter(code: int) -> None:
    status = {"id": "wamid.x", "status": "failed", "timestamp": "1739230955", "errors": [{"code": code}]}
    out = norm("messages", {"metadata": META, "statuses": [status, {**status, "errors": [{"code": 131060}]}]})
    assert [row.error_code for row in out.statuses] == [131060]
    assert [rejected.path for rejected in out.rejected] == ["$.value.statuses[0].errors[0].code"]


@given(outside(MAX_UINT32))
def test_a_message_time_no_datetime_holds_is_a_dead_letter(timestamp: int) -> None:
    out = norm(
        "smb_message_echoes", {"metadata": META, "message_echoes": [{**MESSAGE, "to": USER, "timestamp": timestamp}]}
    )
    assert out.messages == []
    assert [rejected.path for rejected in out.rejected] == ["$.value.message_echoes[0].timestamp"]

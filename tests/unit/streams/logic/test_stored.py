"""State in changelog topics: named records that read back after an upgrade.

Round trips of every state type; the unnamed encodings of earlier releases (bytes copied from what
they wrote) still decode; a record written before a field was added decodes with its default."""

from __future__ import annotations

from typing import NamedTuple

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import MessageRow
from streams.logic import media_join, reorder, stored, sync_state

ints = st.integers(-(2**53), 2**53)
optional_ints = st.none() | ints
texts = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)

message_rows = st.builds(
    MessageRow,
    *[texts] * 11,
    ints,
    optional_ints,
    optional_ints,
    texts,
    texts,
    optional_ints,
    ints,
)
pendings = st.builds(media_join.Pending, st.none() | message_rows, st.none() | message_rows, finite)
sync_states = st.builds(
    sync_state.SyncState,
    texts,
    st.sampled_from([sync_state.IN_PROGRESS, sync_state.COMPLETE, sync_state.DECLINED]),
    ints,
    st.lists(ints, unique=True).map(sorted),
    st.sets(texts),
    ints,
    optional_ints,
    ints,
    ints,
    ints,
    ints,
)
phase_runs = st.builds(reorder.PhaseRun, ints, st.lists(ints), st.lists(ints), st.booleans())
reorder_states = st.builds(
    reorder.ReorderState, st.dictionaries(ints, phase_runs, max_size=4), st.booleans(), st.none() | finite
)


@given(pendings)
def test_media_pending_round_trips(pending: media_join.Pending) -> None:
    assert media_join.decode(media_join.encode(pending)) == pending


@given(sync_states)
def test_sync_state_round_trips(state: sync_state.SyncState) -> None:
    assert sync_state.decode(sync_state.encode(state)) == state


@given(reorder_states)
def test_reorder_state_round_trips(state: reorder.ReorderState) -> None:
    assert reorder.decode(reorder.encode(state)) == state


def test_records_are_named_and_versioned() -> None:
    for data in (
        media_join.encode(media_join.Pending(None, None, 1.0)),
        sync_state.encode(sync_state.SyncState()),
        reorder.encode(reorder.ReorderState()),
    ):
        doc = orjson.loads(data)
        assert isinstance(doc, dict)
        assert doc[stored.FORMAT_KEY] == 1


# ---- the encodings written before named records: bytes as that code wrote them ---------------------

ROW = MessageRow(
    "pn1", "w1", "m1", "c1", "inbound", "history", "media_placeholder", "", "", "", "delivered",
    1700000000, 0, 3, '{"id":"m1"}', "", None, 5,
)  # fmt: skip
FOLLOWUP = ROW._replace(
    type="image", media_id="mid", media_mime_type="image/jpeg", history_phase=None, history_chunk_order=None,
    status="", version=7,
)  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'[["pn1","w1","m1","c1","inbound","history","media_placeholder","","","","delivered",1700000000,0,3,'
            b'"{\\"id\\":\\"m1\\"}","",null,5],null,12.5]',
            media_join.Pending(ROW, None, 12.5),
        ),
        (
            b'[null,["pn1","w1","m1","c1","inbound","history","image","","mid","image/jpeg","",1700000000,null,'
            b'null,"{\\"id\\":\\"m1\\"}","",null,7],3.0]',
            media_join.Pending(None, FOLLOWUP, 3.0),
        ),
    ],
)
def test_unnamed_media_pending_decodes(data: bytes, expected: media_join.Pending) -> None:
    assert media_join.decode(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'["w1","in_progress",40,[0,1],["aa","bb"],12,2593109,1700000001,4,1699999999,1700000002]',
            sync_state.SyncState("w1", "in_progress", 40, [0, 1], {"aa", "bb"}, 12, 2593109, 1700000001, 4,
                                 1699999999, 1700000002),
        ),
        (  # before newest_message_at and error_at
            b'["w1","complete",100,[0],["aa"],3,null,17,2]',
            sync_state.SyncState("w1", "complete", 100, [0], {"aa"}, 3, None, 17, 2, 0, 0),
        ),
    ],
)  # fmt: skip
def test_unnamed_sync_state_decodes(data: bytes, expected: sync_state.SyncState) -> None:
    assert sync_state.decode(data) == expected


def test_unnamed_reorder_state_decodes() -> None:
    data = b'{"p":{"0":[3,[1],[5,7],true],"2":[1,[],[],false]},"c":false,"o":17.25}'
    assert reorder.decode(data) == reorder.ReorderState(
        {0: reorder.PhaseRun(3, [1], [5, 7], True), 2: reorder.PhaseRun()}, False, 17.25
    )


def test_state_rewritten_after_decoding_the_unnamed_encoding_is_named() -> None:
    state = sync_state.decode(b'["w1","complete",100,[0],["aa"],3,null,17,2]')
    assert sync_state.decode(sync_state.encode(state)) == state
    assert stored.FORMAT_KEY in orjson.loads(sync_state.encode(state))


# ---- records written before a field was added -----------------------------------------------------


def test_sync_state_without_later_fields_takes_their_defaults() -> None:
    doc = orjson.loads(sync_state.encode(sync_state.SyncState("w1", progress=40, newest_message_at=9, error_at=8)))
    del doc["newest_message_at"], doc["error_at"]
    doc["a_field_since_removed"] = 1
    state = sync_state.decode(orjson.dumps(doc))
    assert state == sync_state.SyncState("w1", progress=40)


def test_reorder_state_without_later_fields_takes_their_defaults() -> None:
    doc = orjson.loads(reorder.encode(reorder.ReorderState({1: reorder.PhaseRun(2, [], [4], True)}, True, 5.0)))
    del doc["oldest_held_at"], doc["phases"]["1"]["zero_released"]
    assert reorder.decode(orjson.dumps(doc)) == reorder.ReorderState({1: reorder.PhaseRun(2, [], [4])}, True)


class WiderRow(NamedTuple):
    """MessageRow after a column was added (with a default, as a field added to a row type must)."""

    phone_number_id: str
    waba_id: str
    message_id: str
    contact_wa_id: str
    direction: str
    source: str
    type: str
    text: str
    media_id: str
    media_mime_type: str
    status: str
    sent_at: int
    history_phase: int | None
    history_chunk_order: int | None
    raw: str
    context_id: str
    error_code: int | None
    version: int
    contact_user_id: str = ""
    contact_username: str = ""
    reaction: str = ""


def test_held_row_written_before_a_column_was_added_decodes_with_its_default() -> None:
    doc = orjson.loads(media_join.encode(media_join.Pending(ROW, None, 1.0)))
    row = stored.row_from(WiderRow, doc["placeholder"])
    assert row == WiderRow(*ROW)
    assert row is not None and row.reaction == ""


def test_held_row_is_read_by_name_whatever_the_order_of_its_fields() -> None:
    """A record as this version writes it is read in one step; any other still by name."""
    fields = orjson.loads(media_join.encode(media_join.Pending(ROW, None, 1.0)))["placeholder"]
    assert stored.row_from(MessageRow, dict(reversed(fields.items()))) == ROW
    swapped = {"waba_id": fields["waba_id"], "phone_number_id": fields["phone_number_id"], **fields}
    assert stored.row_from(MessageRow, swapped) == ROW
    assert stored.row_from(MessageRow, {**fields, "a_dropped_column": 1}) == ROW

"""The per-business sync state: its error time and the states earlier versions stored."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from streams.logic import sync_state
from streams.logic.sync_state import COMPLETE, DECLINED, IN_PROGRESS, SyncState, decode, encode, on_chunk, on_error


def test_an_error_is_dated_by_its_first_arrival() -> None:
    state = SyncState()
    assert on_error(state, "waba", 2593109, 100)
    assert not on_error(state, "waba", 2593109, 250)  # a redelivery changes nothing
    assert (state.state, state.error_code, state.error_at) == (DECLINED, 2593109, 100)
    other = SyncState()
    assert on_error(other, "waba", 131000, 100)
    assert on_error(other, "waba", 131026, 300)
    assert (other.error_code, other.error_at) == (131026, 300)


def test_a_declined_history_keeps_its_code_through_later_errors() -> None:
    state = SyncState()
    on_error(state, "waba", 2593109, 100)
    assert not on_error(state, "waba", 131000, 300)
    assert (state.state, state.error_code, state.error_at) == (DECLINED, 2593109, 100)
    assert sync_state.to_row("pnid", state).error_code == 2593109


def test_the_state_round_trips_and_earlier_forms_still_read() -> None:
    state = SyncState(waba_id="waba", progress=40, phases_seen=[0, 1], chunk_ids={"a"}, messages_received=9)
    on_error(state, "waba", 2593109, 100)
    state.newest_message_at = 90
    assert decode(encode(state)) == state
    # The unnamed encoding of earlier releases: the fields in order, later ones missing in older ones.
    fields = ["waba", DECLINED, 40, [0, 1], ["a"], 9, 2593109, 100, state.version, 90, 100]
    assert decode(orjson.dumps(fields)) == state
    without_error_at, without_newest = fields[:-1], fields[:-2]
    assert decode(orjson.dumps(without_error_at)).error_at == 0
    older = decode(orjson.dumps(without_newest))
    assert (older.newest_message_at, older.error_at, older.error_code) == (0, 0, 2593109)
    assert sync_state.to_row("pnid", older).error_code == 2593109


def test_an_error_stored_before_error_times_gets_one_on_its_next_redelivery() -> None:
    state = SyncState(error_code=2593109, state=DECLINED)  # as a state of an earlier version reads
    assert on_error(state, "waba", 2593109, 500)  # changed: the time is stored, and kept from then on
    assert not on_error(state, "waba", 2593109, 900)
    assert state.error_at == 500


def test_a_declined_history_shared_later_moves_on_and_completes() -> None:
    state = SyncState()
    on_error(state, "waba", 2593109, 100)
    assert on_chunk(state, "waba", 0, 0, 40, "m1", 3, 200)
    assert (state.state, state.progress, state.error_code, state.error_at) == (IN_PROGRESS, 40, 2593109, 100)
    assert not on_error(state, "waba", 2593109, 300)  # the superseded decline again changes nothing
    assert on_chunk(state, "waba", 0, 1, 100, "m4", 3, 400)
    assert state.state == COMPLETE


@hyp_settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 100)), st.just("decline")),
        min_size=1,
    ).filter(lambda events: any(e != "decline" for e in events))
)
def test_after_a_decline_the_shared_history_decides_the_state(events: list[tuple[int, int, int] | str]) -> None:
    """A decline, then chunks and redeliveries of the decline in any order: never stuck as declined."""
    state = SyncState()
    on_error(state, "waba", 2593109, 100)
    seen_chunk = False
    for at, event in enumerate(events, 200):
        if event == "decline":
            on_error(state, "waba", 2593109, at)
            assert (state.state == DECLINED) == (not seen_chunk)
            continue
        phase, order, progress = event
        on_chunk(state, "waba", phase, order, progress, f"m{phase}.{order}", 1, at)
        seen_chunk = True
    top = max(e[2] for e in events if e != "decline")
    assert state.state == (COMPLETE if top >= 100 else IN_PROGRESS)
    assert (state.error_code, state.error_at) == (2593109, 100)

"""The history reorder buffer: any arrival order, any redelivery -> each chunk released once, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.logic import reorder
from streams.logic.reorder import ChunkId, ReorderState


@st.composite
def deliveries(draw: st.DrawFn) -> list[ChunkId]:
    """Chunks 1..n of a few phases, shuffled, some delivered two or three times."""
    chunks = [
        ChunkId(phase, order)
        for phase in draw(st.sets(st.integers(0, 2), min_size=1))
        for order in range(1, draw(st.integers(1, 8)) + 1)
    ]
    repeated = chunks + draw(st.lists(st.sampled_from(chunks), max_size=len(chunks) * 2))
    return draw(st.permutations(repeated))


def _run(arrivals: list[ChunkId], state: ReorderState) -> list[ChunkId]:
    released: list[ChunkId] = []
    for i, chunk in enumerate(arrivals):
        released.extend(reorder.accept(state, chunk, progress=0, now=float(i)).released)
    return released


@given(deliveries())
def test_every_chunk_is_released_exactly_once_and_in_order_of_its_phase(arrivals: list[ChunkId]) -> None:
    state = ReorderState()
    released = _run(arrivals, state)
    assert sorted(released) == sorted(set(arrivals))
    for phase in {c.phase for c in arrivals}:
        orders = [c.chunk_order for c in released if c.phase == phase]
        assert orders == sorted(orders)
    assert state.held_count == 0
    assert state.oldest_held_at is None


@given(deliveries(), st.data())
def test_a_chunk_is_released_only_after_every_lower_order_of_its_phase(
    arrivals: list[ChunkId], data: st.DataObject
) -> None:
    state = ReorderState()
    seen_released: set[ChunkId] = set()
    for i, chunk in enumerate(arrivals):
        for out in reorder.accept(state, chunk, progress=0, now=float(i)).released:
            assert all(ChunkId(out.phase, o) in seen_released for o in range(1, out.chunk_order))
            seen_released.add(out)


@given(deliveries(), st.data())
def test_flush_releases_all_held_in_order_and_records_the_gaps(arrivals: list[ChunkId], data: st.DataObject) -> None:
    # Some chunks never arrive.
    unique = sorted(set(arrivals))
    lost = set(data.draw(st.lists(st.sampled_from(unique), max_size=len(unique) - 1, unique=True)))
    state = ReorderState()
    released = _run([c for c in arrivals if c not in lost], state)
    flushed = reorder.flush(state)
    assert flushed.released == sorted(flushed.released)
    everything = released + flushed.released
    assert sorted(everything) == sorted(set(unique) - lost)
    max_order = {p: max(c.chunk_order for c in everything if c.phase == p) for p in {c.phase for c in everything}}
    expected_gaps = sorted(c for c in lost if c.chunk_order < max_order.get(c.phase, 0))
    assert sorted(flushed.gaps) == expected_gaps
    assert state.held_count == 0


@given(deliveries())
def test_progress_100_flushes_and_later_chunks_go_out_at_once_as_late(arrivals: list[ChunkId]) -> None:
    state = ReorderState()
    last = max(arrivals)
    released: list[ChunkId] = []
    for i, chunk in enumerate(arrivals):
        progress = 100 if chunk == last else 50
        outcome = reorder.accept(state, chunk, progress=progress, now=float(i))
        released.extend(outcome.released)
        if state.complete:
            assert state.held_count == 0
    assert sorted(released) == sorted(set(arrivals))
    assert state.complete


def test_chunk_zero_precedes_one_and_a_late_zero_is_still_released() -> None:
    state = ReorderState()
    assert reorder.accept(state, ChunkId(0, 0), 0, 0.0).released == [ChunkId(0, 0)]
    assert reorder.accept(state, ChunkId(0, 1), 0, 0.0).released == [ChunkId(0, 1)]
    other = ReorderState()
    reorder.accept(other, ChunkId(1, 1), 0, 0.0)
    late = reorder.accept(other, ChunkId(1, 0), 0, 0.0)
    assert late.released == late.late == [ChunkId(1, 0)]


def test_phases_are_independent_runs() -> None:
    state = ReorderState()
    assert reorder.accept(state, ChunkId(2, 1), 0, 0.0).released == [ChunkId(2, 1)]
    assert reorder.accept(state, ChunkId(1, 2), 0, 1.0).held
    assert reorder.accept(state, ChunkId(1, 1), 0, 2.0).released == [ChunkId(1, 1), ChunkId(1, 2)]


def test_timeout_is_due_from_the_oldest_held_chunk() -> None:
    state = ReorderState()
    reorder.accept(state, ChunkId(0, 3), 0, 100.0)
    reorder.accept(state, ChunkId(0, 4), 0, 150.0)
    assert not reorder.due(state, 199.0, 100.0)
    assert reorder.due(state, 200.0, 100.0)
    flushed = reorder.flush(state)
    assert flushed.released == [ChunkId(0, 3), ChunkId(0, 4)]
    assert flushed.gaps == [ChunkId(0, 1), ChunkId(0, 2)]
    filled = reorder.accept(state, ChunkId(0, 2), 0, 300.0)
    assert filled.released == filled.late == [ChunkId(0, 2)]
    assert reorder.accept(state, ChunkId(0, 2), 0, 301.0).duplicate


@given(deliveries())
def test_state_round_trips_through_bytes(arrivals: list[ChunkId]) -> None:
    state = ReorderState()
    _run(arrivals[: len(arrivals) // 2], state)
    assert reorder.decode(reorder.encode(state)) == state

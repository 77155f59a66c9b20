"""Release one business's history chunks in (phase, chunk_order) order.

Each phase is its own run: phases come and go independently (a phase with no history sends
nothing), so phase 1 never waits for phase 0. Numbering starts at 1; a chunk_order 0, if ever
seen, precedes 1 and is released at once. A chunk is released when every lower order of its
phase has been released; later ones are held. Deliveries are at least once, so a chunk that was
already released or is held is a duplicate and is dropped here (its rows were written anyway).

`progress == 100` (the only sure end of a sync) or a timeout flushes what is held, in order, and
records the missing orders as gaps. A gap filled later is released at once ("late"); after
completion every new chunk is released at once.

Only chunk ids live in this state; the caller stores the held chunks' rows under their own keys.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.logic import stored


class ChunkId(NamedTuple):
    phase: int
    chunk_order: int


@dataclass(slots=True)
class PhaseRun:
    next_order: int = 1  # every order in [1, next_order) is released, except the gaps
    gaps: list[int] = field(default_factory=list)  # sorted, each < next_order
    held: list[int] = field(default_factory=list)  # sorted, each > next_order
    zero_released: bool = False

    def released(self, order: int) -> bool:
        if order == 0:
            return self.zero_released
        return 1 <= order < self.next_order and not _contains(self.gaps, order)


@dataclass(slots=True)
class ReorderState:
    phases: dict[int, PhaseRun] = field(default_factory=dict)
    complete: bool = False
    oldest_held_at: float | None = None  # when the oldest held chunk arrived

    @property
    def held_count(self) -> int:
        return sum(len(run.held) for run in self.phases.values())


@dataclass(frozen=True, slots=True)
class Outcome:
    duplicate: bool  # the chunk was released or held before: nothing to do
    held: bool  # the caller must store the chunk's rows until released
    released: list[ChunkId]  # in release order; may include the incoming chunk
    late: list[ChunkId]  # released chunks that came after a later one of their phase
    gaps: list[ChunkId]  # orders given up by a flush


def accept(state: ReorderState, chunk: ChunkId, progress: int, now: float) -> Outcome:
    """Take one arriving chunk; mutate `state`; say what to release, hold or drop."""
    run = state.phases.setdefault(chunk.phase, PhaseRun())
    order = chunk.chunk_order
    if run.released(order) or _contains(run.held, order):
        if progress >= 100 and not state.complete:
            flushed = flush(state, complete=True)
            return Outcome(True, False, flushed.released, [], flushed.gaps)
        return Outcome(True, False, [], [], [])
    released: list[ChunkId] = []
    late: list[ChunkId] = []
    gaps: list[ChunkId] = []
    held = False
    if order == 0 or order < run.next_order:
        if order == 0:
            run.zero_released = True
        else:
            run.gaps.remove(order)
        released.append(chunk)
        if order != 0 or run.next_order > 1:
            late.append(chunk)
    elif order == run.next_order:
        released.append(chunk)
        run.next_order += 1
        while run.held and run.held[0] == run.next_order:
            released.append(ChunkId(chunk.phase, run.held.pop(0)))
            run.next_order += 1
    elif state.complete:
        gaps = [ChunkId(chunk.phase, g) for g in range(run.next_order, order)]
        run.gaps.extend(range(run.next_order, order))
        run.next_order = order + 1
        released.append(chunk)
    else:
        bisect.insort(run.held, order)
        held = True
        if state.oldest_held_at is None:
            state.oldest_held_at = now
    if progress >= 100 and not state.complete:
        flushed = flush(state, complete=True)
        released.extend(flushed.released)
        gaps.extend(flushed.gaps)
        held = False
    elif state.held_count == 0:
        state.oldest_held_at = None
    return Outcome(False, held, released, late, gaps)


@dataclass(frozen=True, slots=True)
class Flushed:
    released: list[ChunkId]
    gaps: list[ChunkId]


def flush(state: ReorderState, *, complete: bool = False) -> Flushed:
    """Release everything held, in (phase, chunk_order) order; the skipped orders become gaps."""
    released: list[ChunkId] = []
    gaps: list[ChunkId] = []
    for phase in sorted(state.phases):
        run = state.phases[phase]
        for order in run.held:
            missing = range(run.next_order, order)
            gaps.extend(ChunkId(phase, g) for g in missing)
            run.gaps.extend(missing)
            released.append(ChunkId(phase, order))
            run.next_order = order + 1
        run.held = []
    state.oldest_held_at = None
    if complete:
        state.complete = True
    return Flushed(released, gaps)


def due(state: ReorderState, now: float, timeout_s: float) -> bool:
    """Whether the oldest held chunk has waited `timeout_s` for the orders before it."""
    return state.oldest_held_at is not None and now - state.oldest_held_at >= timeout_s


FORMAT = 1


def encode(state: ReorderState) -> bytes:
    doc = stored.fields_of(state)
    doc["phases"] = {str(phase): stored.fields_of(run) for phase, run in state.phases.items()}
    doc[stored.FORMAT_KEY] = FORMAT
    return orjson.dumps(doc)


def decode(data: bytes) -> ReorderState:
    doc = orjson.loads(data)
    if stored.FORMAT_KEY not in doc:
        return _decode_unnamed(doc)
    phases = {
        int(phase): stored.build(PhaseRun, run, gaps=list(run.get("gaps", [])), held=list(run.get("held", [])))
        for phase, run in doc.get("phases", {}).items()
    }
    return stored.build(ReorderState, doc, phases=phases)


def _decode_unnamed(doc: dict[str, Any]) -> ReorderState:
    """A state written before named records: {"p": {phase: [next_order, gaps, held, zero_released]},
    "c": complete, "o": oldest_held_at}."""
    phases = {int(k): PhaseRun(v[0], list(v[1]), list(v[2]), bool(v[3])) for k, v in doc["p"].items()}
    return ReorderState(phases, bool(doc["c"]), doc["o"])


def _contains(sorted_list: list[int], value: int) -> bool:
    i = bisect.bisect_left(sorted_list, value)
    return i < len(sorted_list) and sorted_list[i] == value

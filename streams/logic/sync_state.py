"""Per-business history sync state, emitted as a `history_sync` row on every history record.

- state: `in_progress` from the first chunk, `complete` once a chunk says progress 100 (the only
  sure end), `declined` on error 2593109 (the business did not share its history). `complete` is
  final. `declined` is not: a chunk after it means a new onboarding shared the history, so the
  state moves on (`in_progress`, `complete` at 100). The decline's code and time stay, as what
  happened before; the same decline arriving again once chunks came (a redelivery, a replay) is
  the one they superseded and changes nothing. A later onboarding declining again after a shared
  history cannot be told from that redelivery (the error carries no time) and is not shown.
- progress: the highest seen (chunks arrive in any order).
- phases_complete: a phase seen is complete once a chunk of a later phase has been seen (the
  platform sends phases in order, so a later phase starting means the earlier one is done), and
  every phase seen is complete at progress 100. A phase with no history sends nothing and is
  never listed.
- chunks_received / messages_received count unique chunks only. Deliveries are at least once and
  (phase, chunk_order) alone is not a delivery key, so a chunk's identity is (phase, chunk_order,
  first message id, message count), kept as a short hash.
- version increases on every change, so the newest state wins in ClickHouse.
- error_at: when the current error code first arrived. A history error carries no time of its own;
  its `webhook_errors` row is dated by this, so a redelivery of it finds the same row key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.rows import HistorySyncRow
from streams.logic import stored

DECLINED_CODE = 2593109
IN_PROGRESS = "in_progress"
COMPLETE = "complete"
DECLINED = "declined"


@dataclass(slots=True)
class SyncState:
    waba_id: str = ""
    state: str = IN_PROGRESS
    progress: int = 0
    phases_seen: list[int] = field(default_factory=list)
    chunk_ids: set[str] = field(default_factory=set)
    messages_received: int = 0
    error_code: int | None = None
    updated_at: int = 0
    version: int = 0
    # The newest message timestamp of the history seen so far: day 0 is onboarding, so this
    # approaches it from below and dates which media can still get a follow-up.
    newest_message_at: int = 0
    error_at: int = 0


def chunk_identity(phase: int, chunk_order: int, first_message_id: str, message_count: int) -> str:
    raw = f"{phase}:{chunk_order}:{first_message_id}:{message_count}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def on_chunk(
    state: SyncState,
    waba_id: str,
    phase: int,
    chunk_order: int,
    progress: int,
    first_message_id: str,
    message_count: int,
    now: int,
    newest_message_at: int = 0,
) -> bool:
    """Count one history chunk; return whether the state changed."""
    before = _snapshot(state)
    state.waba_id = waba_id or state.waba_id
    state.newest_message_at = max(state.newest_message_at, newest_message_at)
    identity = chunk_identity(phase, chunk_order, first_message_id, message_count)
    if identity not in state.chunk_ids:
        state.chunk_ids.add(identity)
        state.messages_received += message_count
    if phase not in state.phases_seen:
        state.phases_seen = sorted([*state.phases_seen, phase])
    state.progress = max(state.progress, min(progress, 100))
    if state.state == DECLINED:
        state.state = IN_PROGRESS
    if state.progress >= 100 and state.state == IN_PROGRESS:
        state.state = COMPLETE
    return _touch(state, before, now)


def on_error(state: SyncState, waba_id: str, code: int, now: int) -> bool:
    """A history error; 2593109 means declined. Return whether the state changed."""
    before = _snapshot(state)
    state.waba_id = waba_id or state.waba_id
    if state.state == DECLINED and code != DECLINED_CODE:
        # The decline is why there is no history: a later error does not replace its code.
        return _touch(state, before, now)
    if code == DECLINED_CODE and state.error_code == DECLINED_CODE and state.chunk_ids:
        # The decline a shared history already superseded, arriving again.
        return _touch(state, before, now)
    if code != state.error_code or not state.error_at:
        state.error_at = now
    state.error_code = code
    if code == DECLINED_CODE and state.state != COMPLETE:
        state.state = DECLINED
    return _touch(state, before, now)


def phases_complete(state: SyncState) -> list[int]:
    if state.state == COMPLETE:
        return list(state.phases_seen)
    if not state.phases_seen:
        return []
    last = state.phases_seen[-1]
    return [p for p in state.phases_seen if p < last]


def to_row(phone_number_id: str, state: SyncState) -> HistorySyncRow:
    return HistorySyncRow(
        phone_number_id=phone_number_id,
        waba_id=state.waba_id,
        state=state.state,
        progress=state.progress,
        phases_complete=phases_complete(state),
        chunks_received=len(state.chunk_ids),
        messages_received=state.messages_received,
        error_code=state.error_code,
        updated_at=state.updated_at,
        version=state.version,
    )


FORMAT = 1


def encode(state: SyncState) -> bytes:
    doc = stored.fields_of(state)
    doc["chunk_ids"] = sorted(state.chunk_ids)
    doc[stored.FORMAT_KEY] = FORMAT
    return orjson.dumps(doc)


def decode(data: bytes) -> SyncState:
    doc = orjson.loads(data)
    if isinstance(doc, list):
        return _decode_unnamed(doc)
    return stored.build(
        SyncState, doc, phases_seen=list(doc.get("phases_seen", [])), chunk_ids=set(doc.get("chunk_ids", []))
    )


def _decode_unnamed(doc: list[Any]) -> SyncState:
    """A state written before named records: its fields in order, the later ones possibly missing."""
    w, s, p, phases, ids, msgs, code, at, version, *rest = doc
    newest, error_at = [*rest, 0, 0][:2]
    return SyncState(w, s, p, list(phases), set(ids), msgs, code, at, version, newest, error_at)


def _snapshot(state: SyncState) -> tuple[object, ...]:
    return (
        state.waba_id,
        state.state,
        state.progress,
        tuple(state.phases_seen),
        len(state.chunk_ids),
        state.messages_received,
        state.error_code,
        state.newest_message_at,
        state.error_at,
    )


def _touch(state: SyncState, before: tuple[object, ...], now: int) -> bool:
    if _snapshot(state) == before:
        return False
    state.version += 1
    state.updated_at = max(state.updated_at, now)
    return True

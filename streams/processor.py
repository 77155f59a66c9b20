"""One Kafka record in -> rows for the sinks, records for `normalized_messages`, state changes out.

No Kafka and no ClickHouse here: state is read through `StateStore` (faust tables in production,
a dict in tests) and every change is returned as a write for the caller to apply, after it has
published what this record released. A record that fails anywhere (undecodable, a SchemaError,
anything unexpected) changes nothing and becomes one dead letter.

Rows go to ClickHouse on arrival (tables are keyed and versioned, so arrival order and
redelivery do not matter); the reorder buffer only governs the ordered release to the topic.
A replay after a crash may find the state ahead of the sinks, so everything a record implies is
written again rather than skipped: the `history_sync` row on every history record, the joined
media row on a redelivered side, a contact change equal to the state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson
import pyarrow as pa

from schemas.normalize import Normalized
from schemas.rows import OFFBOARDING_EVENTS, ContactRow, DeadLetterRow, MessageRow, StatusRow
from streams import codec
from streams.logic import contacts, identity, media_join, purged, reorder, sync_state
from streams.logic.reorder import ChunkId
from streams.prepare import Prepared, PreparedChunk, join_arrays, json_parts, messages_json, prepare

log = logging.getLogger(__name__)

# State tables, by the name the store knows them under.
REORDER = "reorder"  # phone_number_id -> reorder.ReorderState
# phone_number_id|phase|chunk_order -> packed messages JSON of a held chunk; for a chunk in several
# parts (`PreparedChunk.packed`) an index (`_index`) there, and part i under that key + `|i`.
HELD = "held_chunks"
MEDIA = "media_pending"  # phone_number_id|message_id -> media_join.Pending
CONTACTS = "contacts"  # phone_number_id|user key -> contacts.Folded
SYNC = "history_sync"  # phone_number_id -> sync_state.SyncState
BUSINESSES = "businesses"  # waba_id -> {"offboarded": bool, "event": str, "at": int}
# ... and phone_number_id|purged -> the purged_at (decimal) whose state this worker forgot
PURGED_SUFFIX = "|purged"
IDENTITIES = "user_identities"  # phone_number_id|BSUID -> identity.Link
TABLES = (REORDER, HELD, MEDIA, CONTACTS, SYNC, BUSINESSES, IDENTITIES)

RECONNECTING_EVENTS = frozenset({"ACCOUNT_RECONNECTED"})  # clears the offboarded state


class StateStore(Protocol):
    def get(self, table: str, key: str) -> bytes | None: ...

    def items(self, table: str) -> Iterable[tuple[str, bytes]]: ...


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Published(NamedTuple):
    key: bytes
    value: bytes  # the record; only its head when `packed` is set (see `payload`)
    kind: str = "history"  # history | media | live
    messages: bytes = b"[]"  # the JSON array inside `value`, so unordered releases can be merged
    # A history chunk's messages as the state keeps them (compressed), unpacked only when sent: a run
    # of held chunks released at once (the first chunk arrived last) is never all in memory.
    packed: bytes = b""
    waba_id: str = ""

    def payload(self) -> bytes:
        if not self.packed:
            return self.value
        return b"".join((self.value, codec.unpack(self.packed), b"}"))

    def head(self) -> bytes:
        """The record without its messages (`"messages":null`): what names it when Kafka refused it
        after it left (its messages are in the `messages` table)."""
        head = self.value if self.packed else self.value[: len(self.value) - len(self.messages) - 1]
        return head + b"null}"


UNORDERED_KINDS = frozenset({"media", "live"})


class Write(NamedTuple):
    table: str
    key: str
    value: bytes | None  # None deletes the key


@dataclass(slots=True)
class Output:
    rows: dict[str, list[Any]] = field(default_factory=dict)  # sink table -> rows
    encoded: dict[str, list[pa.Table]] = field(default_factory=dict)  # sink table -> rows as Arrow
    statuses: list[StatusRow] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)  # to normalized_messages, in order
    writes: list[Write] = field(default_factory=list)  # state changes, in order
    gaps: list[tuple[str, ChunkId]] = field(default_factory=list)  # released past without them
    late: list[tuple[str, ChunkId]] = field(default_factory=list)  # gaps that came after all
    dead_letters: list[str] = field(default_factory=list)  # the errors of what went to dead_letters
    purged: bool = False  # the record was of a purged business, older than the purge: dropped

    def add(self, table: str, rows: Sequence[Any]) -> None:
        if rows:
            self.rows.setdefault(table, []).extend(rows)

    def add_encoded(self, table: str, data: pa.Table | None) -> None:
        if data is not None and data.num_rows:
            self.encoded.setdefault(table, []).append(data)


class _Tx:
    """Reads through this record's own pending writes; collects them for the caller."""

    def __init__(self, store: StateStore, out: Output) -> None:
        self._store = store
        self._out = out
        self._pending: dict[tuple[str, str], bytes | None] = {}

    def get(self, table: str, key: str) -> bytes | None:
        if (table, key) in self._pending:
            return self._pending[(table, key)]
        return self._store.get(table, key)

    def set(self, table: str, key: str, value: bytes | None) -> None:
        self._pending[(table, key)] = value
        self._out.writes.append(Write(table, key, value))


def _with_partition(partition: int, payload: bytes) -> bytes:
    # The owning partition travels with the state, so a sweep on partition P touches only the
    # keys whose changelog lives on P (faust writes a table key to the current event's partition).
    return partition.to_bytes(4, "big", signed=True) + payload


def _split_partition(value: bytes) -> tuple[int, bytes]:
    return int.from_bytes(value[:4], "big", signed=True), value[4:]


def release_record(
    pnid: str, waba_id: str, kind: str, phase: int | None, order: int | None, late: bool, messages: bytes
) -> Published:
    head = _release_head(pnid, waba_id, kind, phase, order, late)
    return Published(pnid.encode(), b"".join((head, messages, b"}")), kind, messages, waba_id=waba_id)


def packed_releases(
    pnid: str, waba_id: str, phase: int, order: int, late: bool, packed: list[bytes]
) -> list[Published]:
    """The release of a history chunk, its messages left packed until sent: a record per part, in
    order, each naming its `part` (from 1) of `parts` when there are several."""
    parts = len(packed)
    return [
        Published(
            pnid.encode(),
            _release_head(pnid, waba_id, "history", phase, order, late, (part, parts) if parts > 1 else None),
            "history",
            b"",
            blob,
            waba_id,
        )
        for part, blob in enumerate(packed, 1)
    ]


def _release_head(
    pnid: str,
    waba_id: str,
    kind: str,
    phase: int | None,
    order: int | None,
    late: bool,
    part: tuple[int, int] | None = None,
) -> bytes:
    """The record up to its messages array: `{..., "messages":`."""
    head: dict[str, Any] = {
        "phone_number_id": pnid, "waba_id": waba_id, "kind": kind, "phase": phase, "chunk_order": order, "late": late
    }  # fmt: skip
    if part is not None:
        head["part"], head["parts"] = part
    return orjson.dumps(head)[:-1] + b',"messages":'


def merge_unordered(releases: Sequence[Published]) -> list[Published]:
    """As few records per (business, kind) as fit PART_BYTES each for the joined media and live
    messages of a batch: they have no order to keep, and a record each would cost a Kafka send each."""
    merged: dict[tuple[bytes, str], tuple[str, list[bytes]]] = {}
    for p in releases:
        if p.messages != b"[]":
            merged.setdefault((p.key, p.kind), (p.waba_id, []))[1].append(p.messages)
    return [
        release_record(key.decode(), waba_id, kind, None, None, False, array)
        for (key, kind), (waba_id, arrays) in merged.items()
        for array in join_arrays(arrays)
    ]


class Processor:
    def __init__(
        self,
        store: StateStore,
        *,
        history_flush_timeout_s: float,
        media_pending_ttl_s: float,
        media_followup_window_s: float = 16 * 24 * 3600.0,
    ) -> None:
        self.store = store
        self.history_flush_timeout_s = history_flush_timeout_s
        self.media_pending_ttl_s = media_pending_ttl_s
        self.media_followup_window_s = media_followup_window_s
        # When each partition's media state was last scanned (see `sweep`).
        self._media_swept: dict[int, float] = {}
        # Businesses erased by `coex purge`, kept up to date by the worker (streams/timers.py).
        self.purges = purged.Purges()

    def process(self, record: Record, now: float, prepared: Prepared | None = None) -> Output:
        """Everything one record implies; a dead letter (and nothing else) if it cannot be processed.

        `prepared` is `streams.prepare.prepare(record.value)` when it was done ahead (in a helper
        process). An unreadable item inside the record (a message, a status, a contact change) is
        one dead letter of its own, holding that item, and the rest of the record is processed."""
        if prepared is None:
            prepared = prepare(record.value)
        normalized, error = prepared.normalized, prepared.error
        out = Output()
        if normalized is not None and purged.is_purged(
            self.purges, normalized.phone_number_id, normalized.waba_id, prepared.entry_time, prepared.received_at
        ):
            # Its rows were deleted and must stay so: neither rows nor a dead letter.
            return Output(purged=True)
        if normalized is not None:
            try:
                tx = _Tx(self.store, out)
                self._forget_purged(tx, normalized.phone_number_id, record.partition)
                at = int(prepared.received_at or now)
                self._apply(tx, out, normalized, prepared.chunks, record.partition, at, now)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        if normalized is None or error:
            out = Output(dead_letters=[error])
            out.add("dead_letters", [self.dead_letter(record, error, now)])
            return out
        for n, item in enumerate(normalized.rejected, 1):
            out.dead_letters.append(item.error)
            out.add("dead_letters", [self.dead_letter(record, item.error, now, item.raw, n)])
        return out

    @staticmethod
    def dead_letter(record: Record, error: str, now: float, raw: str | None = None, item: int = 0) -> DeadLetterRow:
        """`raw` is the record's value unless one item of it is meant: its `item`, counted from 1."""
        return DeadLetterRow(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=(record.key or b"").decode("utf-8", "replace"),
            error=error,
            raw=record.value.decode("utf-8", "replace") if raw is None else raw,
            failed_at=now,
            item=item,
        )

    def sweep(self, partition: int, now: float) -> Output:
        """Flush reorder buffers past their timeout and drop expired media state, on one partition."""
        out = Output()
        tx = _Tx(self.store, out)
        for pnid, value in list(self.store.items(REORDER)):
            owner, payload = _split_partition(value)
            if owner != partition:
                continue
            state = reorder.decode(payload)
            if reorder.due(state, now, self.history_flush_timeout_s):
                flushed = reorder.flush(state)
                waba_id = _sync_state(tx, pnid).waba_id
                self._release(tx, out, pnid, waba_id, flushed.released, [], None, None)
                out.gaps.extend((pnid, gap) for gap in flushed.gaps)
                tx.set(REORDER, pnid, _with_partition(partition, reorder.encode(state)))
        # Media state lives for days and a scan reads every partition's keys: once per hundredth of
        # the TTL (expiring at most 1% late), not on every tick of every partition.
        if 0 <= now - self._media_swept.get(partition, -math.inf) < self.media_pending_ttl_s / 100:
            return out
        self._media_swept[partition] = now
        for key, value in list(self.store.items(MEDIA)):
            owner, payload = _split_partition(value)
            if owner == partition and media_join.expired(media_join.decode(payload), now, self.media_pending_ttl_s):
                tx.set(MEDIA, key, None)
        return out

    def _forget_purged(self, tx: _Tx, pnid: str, partition: int) -> None:
        """On the first record of a purged business newer than its purge: its state from before
        the purge goes as its rows did (held chunks, media, contacts, sync and reorder state, links),
        so a business onboarded again starts afresh. Its keys are all on this record's partition;
        the marker keeps a restarted worker from forgetting what came after the purge."""
        purged_at = self.purges.by_phone.get(pnid) if pnid else None
        if purged_at is None:
            return
        marker = pnid + PURGED_SUFFIX
        raw = tx.get(BUSINESSES, marker)
        if raw is not None and int(_split_partition(raw)[1]) >= purged_at:
            return
        for table in TABLES:
            if table != BUSINESSES:
                for key, _ in self.store.items(table):
                    if purged.state_key_of(key, pnid):
                        tx.set(table, key, None)
        tx.set(BUSINESSES, marker, _with_partition(partition, str(purged_at).encode()))

    # ---- per record ------------------------------------------------------------------------------

    def _apply(
        self, tx: _Tx, out: Output, n: Normalized, chunks: list[PreparedChunk], partition: int, at: int, now: float
    ) -> None:
        pnid = n.phone_number_id
        if n.messages:
            self._link_all(tx, out, pnid, n.waba_id, partition, n.messages)
            messages = self._with_phones(tx, pnid, n.messages)
            out.add("messages", messages)
            for part in json_parts(messages):
                out.published.append(release_record(pnid, n.waba_id, "live", None, None, False, part))
        out.statuses.extend(n.statuses)
        out.add("webhook_errors", n.errors)
        out.add("account_events", n.account_events)
        for chunk in chunks:
            self._chunk(tx, out, n, chunk, partition, at, now)
        if n.media_followups:
            self._link_all(tx, out, pnid, n.waba_id, partition, n.media_followups)
        for row in self._with_phones(tx, pnid, n.media_followups):
            self._media(tx, out, row, partition, now, followup=True)
        for error in n.history_errors:
            state = self._sync(tx, out, pnid, partition, _declines(n.waba_id, error.code, at))
            # Dated by its first arrival: the payload has no time, a redelivery must find the same row.
            out.add("webhook_errors", [error._replace(occurred_at=state.error_at or error.occurred_at)])
        for contact in n.contacts:
            self._contact(tx, out, contact, partition)
        for event in n.account_events:
            if event.event in OFFBOARDING_EVENTS | RECONNECTING_EVENTS:
                _lifecycle(tx, partition, event.waba_id, event.phone_number, event.event, event.event_at)

    def _chunk(
        self, tx: _Tx, out: Output, n: Normalized, chunk: PreparedChunk, partition: int, at: int, now: float
    ) -> None:
        pnid = n.phone_number_id
        for sighting in chunk.sightings:
            self._link(tx, out, pnid, n.waba_id, sighting, partition)
        phones = self._linked_phones(tx, pnid, {s.user_id for s in chunk.sightings if not s.wa_id and s.user_id})
        out.add_encoded("messages", _with_phones_arrow(chunk.encoded, phones) if phones else chunk.encoded)
        out.add("messages", _with_phones_rows(chunk.rows, phones) if phones else chunk.rows)
        placeholders = _with_phones_rows(chunk.placeholders, phones) if phones else chunk.placeholders
        newest = max(chunk.newest, _sync_state(tx, pnid).newest_message_at)
        oldest_followup = newest - self.media_followup_window_s
        for row in placeholders:
            if row.sent_at < oldest_followup and tx.get(MEDIA, f"{row.phone_number_id}|{row.message_id}") is None:
                # The platform sends follow-ups only for media of the 14 days before onboarding, the
                # newest history seen: join state for older ones would cost a changelog write each
                # and never be used.
                out.add("messages", [row])
                continue
            self._media(tx, out, row, partition, now, followup=False)
        self._sync(
            tx,
            out,
            pnid,
            partition,
            lambda s: sync_state.on_chunk(
                s, n.waba_id, chunk.phase, chunk.chunk_order, chunk.progress, chunk.first_id, chunk.count, at, newest
            ),
        )
        raw_state = tx.get(REORDER, pnid)
        state = reorder.decode(_split_partition(raw_state)[1]) if raw_state else reorder.ReorderState()
        incoming = ChunkId(chunk.phase, chunk.chunk_order)
        released: list[ChunkId] = []
        late: list[ChunkId] = []
        if reorder.due(state, now, self.history_flush_timeout_s):
            flushed = reorder.flush(state)
            released.extend(flushed.released)
            out.gaps.extend((pnid, gap) for gap in flushed.gaps)
        outcome = reorder.accept(state, incoming, chunk.progress, now)
        released.extend(outcome.released)
        late.extend(outcome.late)
        out.late.extend((pnid, chunk) for chunk in outcome.late)
        out.gaps.extend((pnid, gap) for gap in outcome.gaps)
        if outcome.held:
            _hold(tx, _held_key(pnid, incoming), chunk.packed)
        self._release(tx, out, pnid, n.waba_id, released, late, incoming, chunk.packed)
        tx.set(REORDER, pnid, _with_partition(partition, reorder.encode(state)))

    def _release(
        self,
        tx: _Tx,
        out: Output,
        pnid: str,
        waba_id: str,
        released: Sequence[ChunkId],
        late: Sequence[ChunkId],
        incoming: ChunkId | None,
        incoming_packed: list[bytes] | None,
    ) -> None:
        for chunk_id in released:
            key = _held_key(pnid, chunk_id)
            packed = _unhold(tx, key)
            if packed is None and chunk_id == incoming and incoming_packed is not None:
                packed = incoming_packed
            elif packed is None:
                raise LookupError(f"held chunk {key} missing from the state")
            out.published.extend(
                packed_releases(pnid, waba_id, chunk_id.phase, chunk_id.chunk_order, chunk_id in late, packed)
            )

    def _media(self, tx: _Tx, out: Output, row: MessageRow, partition: int, now: float, *, followup: bool) -> None:
        key = f"{row.phone_number_id}|{row.message_id}"
        raw = tx.get(MEDIA, key)
        pending = media_join.decode(_split_partition(raw)[1]) if raw else None
        if pending is not None and media_join.expired(pending, now, self.media_pending_ttl_s):
            pending = None
        if followup:
            state, result = media_join.on_followup(pending, row, now)
        else:
            state, result = media_join.on_placeholder(pending, row, now)
        # A follow-up joining a stored placeholder changes nothing worth a changelog record: a
        # redelivery of it finds the placeholder and joins again.
        if not (followup and pending is not None and pending.placeholder is not None):
            tx.set(MEDIA, key, _with_partition(partition, media_join.encode(state)))
        out.add("messages", [result])
        if followup or not media_join.is_placeholder(result):
            out.published.append(
                release_record(row.phone_number_id, row.waba_id, "media", None, None, False, messages_json([result]))
            )

    def _sync(
        self, tx: _Tx, out: Output, pnid: str, partition: int, change: Callable[[sync_state.SyncState], bool]
    ) -> sync_state.SyncState:
        state = _sync_state(tx, pnid)
        if change(state):
            tx.set(SYNC, pnid, _with_partition(partition, sync_state.encode(state)))
        # Written even when unchanged: after a crash the state may be ahead of ClickHouse.
        rows = out.rows.setdefault("history_sync", [])
        rows[:] = [r for r in rows if r.phone_number_id != pnid]
        rows.append(sync_state.to_row(pnid, state))
        return state

    def _contact(self, tx: _Tx, out: Output, row: ContactRow, partition: int) -> None:
        pnid = row.phone_number_id
        if row.contact_wa_id and row.contact_user_id:
            sighting = identity.Sighting(
                row.contact_wa_id, row.contact_user_id, row.username, row.changed_at, row.changed_at
            )
            self._link(tx, out, pnid, row.waba_id, sighting, partition)
        phone = identity.phone_of(row.contact_wa_id, row.contact_user_id, lambda uid: self._link_of(tx, pnid, uid))
        self._fold(tx, out, row._replace(contact_wa_id=phone, user_key=phone or row.contact_user_id), partition)

    def _fold(self, tx: _Tx, out: Output, row: ContactRow, partition: int) -> None:
        key = contacts.key(row.phone_number_id, row.user_key)
        raw = tx.get(CONTACTS, key)
        current = contacts.decode(_split_partition(raw)[1]) if raw else None
        if not contacts.apply(current, row):
            return
        if current is None or current.version != row.version or current.row != row:
            tx.set(CONTACTS, key, _with_partition(partition, contacts.encode(contacts.Folded(row.version, row))))
        out.add("contacts", [row])

    # ---- users (streams/logic/identity.py) -------------------------------------------------------

    def _link_of(self, tx: _Tx, pnid: str, user_id: str) -> identity.Link | None:
        raw = tx.get(IDENTITIES, f"{pnid}|{user_id}")
        return identity.decode(_split_partition(raw)[1]) if raw else None

    def _link(self, tx: _Tx, out: Output, pnid: str, waba_id: str, sighting: identity.Sighting, partition: int) -> None:
        """Record what a sighting with both identifiers links; a BSUID newly linked to a phone moves
        its contact to the phone's key. Its `user_identities` row is written on every sighting: after
        a crash the state may be ahead of ClickHouse."""
        if not (sighting.wa_id and sighting.user_id):
            return
        current = self._link_of(tx, pnid, sighting.user_id)
        link = identity.observe(current, sighting)
        if link is None:
            return
        if link != current:
            tx.set(IDENTITIES, f"{pnid}|{sighting.user_id}", _with_partition(partition, identity.encode(link)))
        rows = out.rows.setdefault("user_identities", [])
        rows[:] = [r for r in rows if (r.phone_number_id, r.contact_user_id) != (pnid, sighting.user_id)]
        rows.append(identity.row(pnid, waba_id, sighting.user_id, link))
        if current is None:
            self._retire_bsuid_key(tx, out, pnid, waba_id, sighting.user_id, link.phone, partition)

    def _retire_bsuid_key(
        self, tx: _Tx, out: Output, pnid: str, waba_id: str, user_id: str, phone: str, partition: int
    ) -> None:
        raw = tx.get(CONTACTS, contacts.key(pnid, user_id))
        if raw is None:
            return
        folded = contacts.decode(_split_partition(raw)[1])
        tx.set(CONTACTS, contacts.key(pnid, user_id), None)
        out.add("contacts", [contacts.merged(pnid, waba_id, user_id)])
        if folded.row is not None:
            self._fold(tx, out, folded.row._replace(contact_wa_id=phone, user_key=phone), partition)

    def _link_all(
        self, tx: _Tx, out: Output, pnid: str, waba_id: str, partition: int, rows: Sequence[MessageRow]
    ) -> None:
        named = ((r.contact_wa_id, r.contact_user_id, r.contact_username, r.sent_at) for r in rows)
        for sighting in identity.sightings(named):
            self._link(tx, out, pnid, waba_id, sighting, partition)

    def _linked_phones(self, tx: _Tx, pnid: str, user_ids: Iterable[str]) -> dict[str, str]:
        """The phones the links give for these BSUIDs (those linked only)."""
        phones = {}
        for user_id in user_ids:
            link = self._link_of(tx, pnid, user_id)
            if link is not None:
                phones[user_id] = link.phone
        return phones

    def _with_phones(self, tx: _Tx, pnid: str, rows: Sequence[MessageRow]) -> Sequence[MessageRow]:
        """Rows whose phone was withheld get the phone an earlier link of their BSUID gave."""
        phones = self._linked_phones(tx, pnid, {r.contact_user_id for r in rows if not r.contact_wa_id})
        return _with_phones_rows(rows, phones) if phones else rows


def _with_phones_rows(rows: Sequence[MessageRow], phones: dict[str, str]) -> list[MessageRow]:
    return [
        r._replace(contact_wa_id=phones[r.contact_user_id])
        if not r.contact_wa_id and r.contact_user_id in phones
        else r
        for r in rows
    ]


def _with_phones_arrow(table: pa.Table | None, phones: dict[str, str]) -> pa.Table | None:
    if table is None:
        return None
    wa_ids = table.column("contact_wa_id").to_pylist()
    filled = identity.fill_phones(phones, wa_ids, table.column("contact_user_id").to_pylist())
    if filled is None:
        return table
    index = table.schema.get_field_index("contact_wa_id")
    return table.set_column(index, table.schema.field(index), pa.array(filled, table.schema.field(index).type))


def _sync_state(tx: _Tx, pnid: str) -> sync_state.SyncState:
    raw = tx.get(SYNC, pnid)
    return sync_state.decode(_split_partition(raw)[1]) if raw else sync_state.SyncState()


def _lifecycle(tx: _Tx, partition: int, waba_id: str, phone: str, event: str, at: int) -> None:
    """The business's latest offboarding or reconnection; an older one arriving late (a redelivery,
    a replay) does not override it."""
    raw = tx.get(BUSINESSES, waba_id)
    if raw is not None and orjson.loads(_split_partition(raw)[1]).get("at", 0) > at:
        return
    offboarded = event in OFFBOARDING_EVENTS
    if offboarded:
        log.warning("business offboarded: waba %s phone %s (%s)", waba_id, phone, event)
    else:
        log.info("business reconnected: waba %s phone %s (%s)", waba_id, phone, event)
    fact = orjson.dumps({"offboarded": offboarded, "event": event, "at": at})
    tx.set(BUSINESSES, waba_id, _with_partition(partition, fact))


def _declines(waba_id: str, code: int, at: int) -> Callable[[sync_state.SyncState], bool]:
    return lambda state: sync_state.on_error(state, waba_id, code, at)


def _held_key(pnid: str, chunk: ChunkId) -> str:
    return f"{pnid}|{chunk.phase}|{chunk.chunk_order}"


# The value under a held chunk's key when it is in several parts: this tag (no codec's, see
# streams/codec.py), then the count of parts in decimal.
_INDEX = b"n"


def held_chunks(keys: Iterable[str]) -> int:
    """How many chunks the keys of HELD hold: a chunk's parts have keys of their own."""
    return sum(1 for key in keys if key.count("|") == 2)


def _hold(tx: _Tx, key: str, packed: list[bytes]) -> None:
    """Keep a chunk's packed parts: one changelog record each, so each fits the topic's limit."""
    if len(packed) == 1:
        tx.set(HELD, key, packed[0])
        return
    tx.set(HELD, key, _INDEX + str(len(packed)).encode())
    for i, part in enumerate(packed):
        tx.set(HELD, f"{key}|{i}", part)


def _unhold(tx: _Tx, key: str) -> list[bytes] | None:
    """The parts of a held chunk, removed from the state; None when it is not held."""
    value = tx.get(HELD, key)
    if value is None:
        return None
    tx.set(HELD, key, None)
    if not value.startswith(_INDEX):
        return [value]
    packed: list[bytes] = []
    for i in range(int(value[len(_INDEX) :])):
        part = tx.get(HELD, f"{key}|{i}")
        if part is None:
            raise LookupError(f"part {i} of held chunk {key} missing from the state")
        tx.set(HELD, f"{key}|{i}", None)
        packed.append(part)
    return packed

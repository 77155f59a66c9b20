"""What a record's processing needs that does not depend on state: done before its turn.

Decoding and normalizing a record, and for each history chunk the JSON of its messages that apps
read from `normalized_messages` and (with `encode`) the Arrow table of its rows for ClickHouse:
most of a history import's CPU. Pure (no state, no I/O, no clock), so the worker runs it for large
records in a helper process (streams/helper.py) while its agent applies the records before them;
`Processor.process` runs it in place for the rest. The media join, the reorder buffer and the sync
state stay with the agent: they read state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
import pyarrow as pa

from schemas.errors import UnsupportedChange
from schemas.normalize import HistoryChunk, Normalized, normalize_change
from schemas.routing import KNOWN_FIELDS, decode_record
from schemas.rows import MessageRow
from sinks.encode import rows_to_arrow
from streams import codec
from streams.logic.identity import Sighting, sightings
from streams.logic.media_join import is_placeholder
from topics.catalog import MAX_MESSAGE_BYTES

# The most JSON of messages one record of the worker holds: a `normalized_messages` record, a held
# chunk's changelog value. Half the topics' limit: room for the record's head and, when snappy
# cannot compress the JSON, for its worst-case growth (n/6) in the batch the broker measures.
PART_BYTES = MAX_MESSAGE_BYTES // 2


@dataclass(slots=True)
class PreparedChunk:
    phase: int
    chunk_order: int
    progress: int
    count: int  # its messages
    first_id: str  # its first message's id; '' when it has none
    newest: int  # the newest sent_at of its messages; 0 when it has none
    # `messages_json` of all its messages in their order, packed (streams/codec.py): what the held
    # chunks' state keeps and what a release sends. Packed here, so a helper does it, not the agent,
    # and the JSON crosses the helper's pipe at about an eighth of its size. One part unless that
    # JSON is over PART_BYTES: then consecutive runs of messages, each under it (`json_parts`).
    packed: list[bytes]
    placeholders: list[MessageRow]  # media placeholders, for the join
    rows: list[MessageRow]  # every other message, as rows ...
    encoded: pa.Table | None = None  # ... but those without a media id here, when encoded
    # The users its messages name, one per distinct (phone, BSUID): its threads, for the links.
    sightings: list[Sighting] = field(default_factory=list)


@dataclass(slots=True)
class Prepared:
    normalized: Normalized | None  # None when the record cannot be read (see `error`)
    chunks: list[PreparedChunk]  # the history chunks (`normalized.history_chunks` is left empty)
    received_at: float | None = None
    error: str = ""  # `Type: message` of what made the record unreadable
    entry_time: int | None = None  # the webhook entry's `time` (a purge compares it, streams/logic/purged.py)


def prepare(value: bytes, *, encode: bool = False) -> Prepared:
    """Everything of a record that needs no state; an unreadable record gives `error`, never raises.

    `encode` turns a chunk's rows without a media id into one Arrow table: what a helper process
    hands back (rows would cost a pickle each way). Rows with a media id stay rows, as the writer
    reads their keys (sinks/writer.py)."""
    try:
        change = decode_record(value)
        if change.field not in KNOWN_FIELDS:
            raise UnsupportedChange(change.field)
        normalized = normalize_change(change)
        chunks = [_chunk(chunk, encode) for chunk in normalized.history_chunks]
    except Exception as exc:
        return Prepared(None, [], error=f"{type(exc).__name__}: {exc}")
    normalized.history_chunks = []
    return Prepared(normalized, chunks, change.received_at, entry_time=change.entry_time)


def _chunk(chunk: HistoryChunk, encode: bool) -> PreparedChunk:
    messages = chunk.messages
    placeholders: list[MessageRow] = []
    rows: list[MessageRow] = []
    plain: list[MessageRow] = []
    for row in messages:
        if is_placeholder(row):
            placeholders.append(row)
        elif encode and not row.media_id:
            plain.append(row)
        else:
            rows.append(row)
    return PreparedChunk(
        phase=chunk.phase,
        chunk_order=chunk.chunk_order,
        progress=chunk.progress,
        count=len(messages),
        first_id=messages[0].message_id if messages else "",
        newest=max((row.sent_at for row in messages), default=0),
        packed=[codec.pack(part) for part in json_parts(messages)],
        placeholders=placeholders,
        rows=rows,
        encoded=rows_to_arrow(MessageRow, plain) if plain else None,
        sightings=sightings((r.contact_wa_id, r.contact_user_id, r.contact_username, r.sent_at) for r in messages),
    )


# A message's fields in its JSON, taken by name: a column added to MessageRow shifts none of them.
_JSON_FIELDS = (
    "message_id", "contact_wa_id", "direction", "source", "type", "text", "media_id", "media_mime_type",
    "status", "sent_at", "history_phase", "history_chunk_order", "raw", "context_id", "error_code",
    "contact_user_id", "contact_username",
)  # fmt: skip


_GETTERS: dict[type[MessageRow], Callable[[MessageRow], tuple[Any, ...]]] = {}


def _json_fields(row_type: type[MessageRow]) -> Callable[[MessageRow], tuple[Any, ...]]:
    """The `_JSON_FIELDS` of a row, as one C call per row (a getter built once per row type)."""
    getter = _GETTERS.get(row_type)
    if getter is None:
        getter = _GETTERS[row_type] = itemgetter(*map(row_type._fields.index, _JSON_FIELDS))
    return getter


def messages_json(rows: Sequence[MessageRow]) -> bytes:
    """A JSON array of message objects, as apps read them (the record around it names the business).

    Always: message_id, contact_wa_id, direction, source, type, text, status, sent_at and raw. Only
    when set: history_phase and history_chunk_order (history messages), media_id and
    media_mime_type, context_id, error_code, contact_user_id and contact_username. `raw` is
    embedded as the JSON object it is, not as an escaped string: no second parse for the apps.
    Leaving out what is empty or the record's own halves the cost of this JSON, the worker's
    largest after parsing (bench/RESULTS.md)."""
    out: list[dict[str, Any]] = []
    append = out.append
    fragment = orjson.Fragment
    fields = _json_fields(type(rows[0])) if rows else _json_fields(MessageRow)
    for (
        message_id, contact, direction, source, mtype, text, media_id, mime, status, sent_at,
        phase, order, raw, context_id, error_code, user_id, username,
    ) in map(fields, rows):  # fmt: skip
        message: dict[str, Any] = {
            "message_id": message_id,
            "contact_wa_id": contact,
            "direction": direction,
            "source": source,
            "type": mtype,
            "text": text,
            "status": status,
            "sent_at": sent_at,
        }
        if phase is not None:
            message["history_phase"] = phase
            message["history_chunk_order"] = order
        if media_id or mime:
            message["media_id"] = media_id
            message["media_mime_type"] = mime
        if context_id:
            message["context_id"] = context_id
        if error_code is not None:
            message["error_code"] = error_code
        if user_id:
            message["contact_user_id"] = user_id
        if username:
            message["contact_username"] = username
        message["raw"] = fragment(raw)
        append(message)
    return orjson.dumps(out)


def json_parts(rows: Sequence[MessageRow], bound: int | None = None) -> list[bytes]:
    """`messages_json` of `rows` as consecutive runs of messages, each run's JSON at most `bound`
    bytes (a single message over it is a part alone): every message once, in order.

    One `messages_json` and a length check when it fits, which is nearly always: a chunk of the
    platform is far under it. `bound` is PART_BYTES unless given."""
    bound = PART_BYTES if bound is None else bound
    data = messages_json(rows)
    if len(data) <= bound or len(rows) <= 1:
        return [data]
    # Runs of an even share of the messages; a run still over the bound (uneven sizes) splits again.
    runs = -(-len(data) // bound)
    step = -(-len(rows) // max(runs, 2))
    return [part for start in range(0, len(rows), step) for part in json_parts(rows[start : start + step], bound)]


def join_arrays(arrays: Sequence[bytes], bound: int | None = None) -> list[bytes]:
    """JSON arrays joined into as few arrays as fit `bound` bytes each, their elements in order; an
    array over it alone stays as it is. The merge of a batch's unordered releases of one business.
    `bound` is PART_BYTES unless given."""
    bound = PART_BYTES if bound is None else bound
    joined: list[bytes] = []
    run: list[bytes] = []
    size = 2
    for array in arrays:
        inner = array[1:-1]
        if not inner:
            continue
        if run and size + 1 + len(inner) > bound:
            joined.append(b"[" + b",".join(run) + b"]")
            run, size = [], 2
        run.append(inner)
        size += len(inner) + (len(run) > 1)
    if run:
        joined.append(b"[" + b",".join(run) + b"]")
    return joined

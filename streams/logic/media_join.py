"""Join a history `media_placeholder` with its follow-up (same message id), whichever comes first.

The placeholder row is written as soon as it arrives; the follow-up (the real type and media
object, sent as its own history webhook) supersedes it with a higher version. The enriched row is
the follow-up with what only the placeholder knows filled in: the chunk it came in, its status,
its thread and time. Both sides stay in the pending state until the TTL passes, so a redelivery of
either side writes the enriched row again instead of an older one. Media older than 14 days before
onboarding never get a follow-up: those rows simply stay placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from schemas.rows import MessageRow, message_version
from streams.logic import stored

PLACEHOLDER = "media_placeholder"


@dataclass(frozen=True, slots=True)
class Pending:
    placeholder: MessageRow | None
    followup: MessageRow | None
    since: float  # when the first side arrived; the TTL counts from here


def is_placeholder(row: MessageRow) -> bool:
    return row.type == PLACEHOLDER


def enrich(followup: MessageRow, placeholder: MessageRow) -> MessageRow:
    """The follow-up row, with the placeholder's facts where the follow-up lacks them. Direction and
    contact are the placeholder's: it comes in its thread, which names the WhatsApp user."""
    status = followup.status or placeholder.status
    return followup._replace(
        direction=placeholder.direction,
        contact_wa_id=placeholder.contact_wa_id or followup.contact_wa_id,
        contact_user_id=placeholder.contact_user_id or followup.contact_user_id,
        contact_username=placeholder.contact_username or followup.contact_username,
        status=status,
        sent_at=followup.sent_at or placeholder.sent_at,
        history_phase=placeholder.history_phase if followup.history_phase is None else followup.history_phase,
        history_chunk_order=(
            placeholder.history_chunk_order if followup.history_chunk_order is None else followup.history_chunk_order
        ),
        version=message_version(True, status),
    )


def on_placeholder(pending: Pending | None, row: MessageRow, now: float) -> tuple[Pending, MessageRow]:
    """A placeholder arrived: the new pending state and the row to write."""
    if pending is None:
        return Pending(row, None, now), row
    state = Pending(row, pending.followup, pending.since)
    if pending.followup is None:
        return state, row
    return state, enrich(pending.followup, row)


def on_followup(pending: Pending | None, row: MessageRow, now: float) -> tuple[Pending, MessageRow]:
    """A follow-up arrived: the new pending state and the row to write."""
    if pending is None:
        return Pending(None, row, now), row
    state = Pending(pending.placeholder, row, pending.since)
    if pending.placeholder is None:
        return state, row
    return state, enrich(row, pending.placeholder)


def expired(pending: Pending, now: float, ttl_s: float) -> bool:
    return now - pending.since >= ttl_s


FORMAT = 1


def encode(pending: Pending) -> bytes:
    return orjson.dumps(
        {
            stored.FORMAT_KEY: FORMAT,
            "placeholder": stored.row_doc(pending.placeholder),
            "followup": stored.row_doc(pending.followup),
            "since": pending.since,
        }
    )


def decode(data: bytes) -> Pending:
    doc = orjson.loads(data)
    if isinstance(doc, list):
        # Written before named records: [placeholder row as a list or null, follow-up the same, since].
        placeholder, followup, since = doc
        return Pending(
            MessageRow(*placeholder) if placeholder else None,
            MessageRow(*followup) if followup else None,
            float(since),
        )
    return stored.build(
        Pending,
        doc,
        placeholder=stored.row_from(MessageRow, doc.get("placeholder")),
        followup=stored.row_from(MessageRow, doc.get("followup")),
        since=float(doc["since"]),
    )

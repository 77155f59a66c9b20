"""Flat, normalized rows: one NamedTuple per ClickHouse table, fields in column order.

The sinks insert these tuples as they are (`column_names=Row._fields`), so a field here is a
column there. `version` columns drive ReplacingMergeTree: the highest version of a key wins.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

# Latest-known-status ordering: a later status never loses to an earlier one.
STATUS_RANK: dict[str, int] = {
    "": 0,
    "pending": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
    "error": 6,
    "failed": 6,
    "deleted": 7,
}


def message_version(complete: bool, status: str) -> int:
    """Version of a message row: a complete row beats a placeholder, then a later status wins."""
    return (int(complete) << 8) | STATUS_RANK.get(status, 0)


class MessageRow(NamedTuple):
    """A column added here goes last, with a default: held media rows in changelog topics are read
    back by name (streams/logic/stored.py) and those written before it lack it."""

    phone_number_id: str
    waba_id: str
    message_id: str
    contact_wa_id: str
    direction: str  # inbound | outbound
    source: str  # history | echo | cloud_api
    type: str
    text: str
    media_id: str
    media_mime_type: str
    status: str  # lower-case
    sent_at: int  # unix seconds, UTC
    history_phase: int | None
    history_chunk_order: int | None
    raw: str  # the message object as received (JSON)
    context_id: str  # the message this one replies to; '' if none
    error_code: int | None  # e.g. 131060 on a messages webhook
    version: int
    # The user's BSUID as the platform gave it ('' if none), and their username ('' if none).
    contact_user_id: str = ""
    contact_username: str = ""


class ContactRow(NamedTuple):
    phone_number_id: str
    contact_wa_id: str  # '' when the platform withheld the number and no link gave it
    full_name: str
    first_name: str
    deleted: int  # 0 | 1
    changed_at: int  # unix seconds, the change's own timestamp
    waba_id: str
    version: int
    contact_user_id: str = ""  # BSUID, '' if none
    username: str = ""
    # The row's key within the business: the user's phone number, or their BSUID where the number
    # was unknown when the user was first seen (streams/logic/identity.py); never changes after.
    user_key: str = ""
    # 1 when this key's user turned out to be another key's user: FINAL then drops the row.
    merged: int = 0


def contact_version(changed_at: int, deleted: bool) -> int:
    """Newest change wins; at the same second a removal wins over an add."""
    return changed_at * 2 + int(deleted)


class HistorySyncRow(NamedTuple):
    phone_number_id: str
    waba_id: str
    state: str  # in_progress | complete | declined
    progress: int
    phases_complete: list[int]
    chunks_received: int
    messages_received: int
    error_code: int | None
    updated_at: int  # unix seconds
    version: int


# account_update events that take a business off the platform (a new onboarding starts over).
OFFBOARDING_EVENTS = frozenset({"PARTNER_REMOVED", "ACCOUNT_OFFBOARDED"})


class AccountEventRow(NamedTuple):
    waba_id: str
    phone_number: str
    event: str
    event_at: int  # unix seconds (the entry's time)
    disconnection_info: str  # JSON, '' if none
    raw: str  # the change value as received (JSON)
    # Tells apart changes of one entry with the same event and time (a hash of `raw`, 63 bits).
    change_key: int


class StatusRow(NamedTuple):
    """A status update from a `messages` webhook, applied to `messages` and kept as history."""

    phone_number_id: str
    message_id: str
    recipient_id: str
    status: str  # lower-case
    status_at: int
    error_code: int | None
    raw: str
    recipient_user_id: str = ""  # BSUID, '' if none


class IdentityRow(NamedTuple):
    """A user seen with a phone number and a BSUID together: they are one user (`user_identities`)."""

    phone_number_id: str
    contact_user_id: str  # BSUID
    contact_wa_id: str  # phone number
    username: str
    first_seen_at: int  # unix seconds: the earliest record's own time that carried both
    last_seen_at: int
    waba_id: str
    version: int  # last_seen_at: the newest sighting wins


class OnboardingRow(NamedTuple):
    """A number's onboarding (table `onboardings`, the newest `version` per number): each step's
    outcome, recorded before the next step is taken (onboarding/)."""

    phone_number_id: str
    waba_id: str
    onboarded_at: int  # unix seconds: when this onboarding began
    deadline_at: int  # onboarded_at + 24 h: the platform's window for the sync requests
    is_on_biz_app: int  # 0 | 1, as the Graph API answered
    platform_type: str
    contacts_request_id: str  # '' until requested
    contacts_requested_at: int  # 0 until requested
    history_request_id: str
    history_requested_at: int
    last_error: str  # the Graph error that stopped it, or what is pending; '' if none
    updated_at: int
    # Ours: where the sequence is (`onboarding.sequence.Step`), and the sync calls begun: a call is
    # recorded as begun before it is made, so it is never made twice (see onboarding/sequence.py).
    step: str = ""
    contacts_begun_at: int = 0
    history_begun_at: int = 0
    attempt: int = 1  # the number's onboarding count: a new one after it was offboarded
    version: int = 0  # grows with every record of a number's onboardings


class PurgeRow(NamedTuple):
    """A business erased by `coex purge` (table `purges`)."""

    phone_number_id: str
    purged_at: int  # unix seconds; records of the business older than this are not written again
    rows_deleted: int
    waba_id: str = ""


class DeadLetterRow(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: str
    error: str
    raw: str
    failed_at: float  # unix seconds
    # Which bad item of the record (1 for its first): two of one record are two keys. 0: the record.
    item: int = 0


class WebhookErrorRow(NamedTuple):
    """An error the platform reported (e.g. 131060 on a `messages` webhook), kept for the business."""

    phone_number_id: str
    waba_id: str
    field: str
    message_id: str  # '' when the error is not tied to one message
    code: int
    title: str
    message: str
    details: str
    # Unix seconds: the status's or message's own time; else the entry's time; else, for a history
    # error, when it first arrived (streams/logic/sync_state.py); else the receive time.
    occurred_at: int
    raw: str


def change_key(raw: str) -> int:
    """A stable 63-bit hash of a change value as stored (positive: Arrow sends it as int64)."""
    digest = hashlib.blake2b(raw.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1

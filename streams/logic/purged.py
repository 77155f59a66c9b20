"""Which records belong to a purged business and are older than its purge (`coex purge`).

A purge deletes every row of a business; a record of it that Kafka still holds (a worker behind, a
replay of the topics, the platform redelivering an old webhook) must not write them again. A
record's own time is its webhook entry's `time` (set by the platform, the same on a redelivery),
else when the ingest received it. A record of the business younger than the purge is new traffic
(the business onboarded again) and is kept.

Purges are known by phone_number_id, and by the business's WABA id for the records that carry only
that (account_update): a WABA may have other numbers, whose records are not the purged one's. The
newest purge of a key counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.rows import PurgeRow


@dataclass(frozen=True, slots=True)
class Purges:
    by_phone: dict[str, int] = field(default_factory=dict)  # phone_number_id -> purged_at (unix s)
    by_waba: dict[str, int] = field(default_factory=dict)  # waba_id -> purged_at

    def __bool__(self) -> bool:
        return bool(self.by_phone or self.by_waba)


def from_rows(rows: Iterable[PurgeRow]) -> Purges:
    """The newest purge of each phone number and of each WABA id the rows name."""
    by_phone: dict[str, int] = {}
    by_waba: dict[str, int] = {}
    for row in rows:
        if row.phone_number_id:
            by_phone[row.phone_number_id] = max(by_phone.get(row.phone_number_id, 0), row.purged_at)
        if row.waba_id:
            by_waba[row.waba_id] = max(by_waba.get(row.waba_id, 0), row.purged_at)
    return Purges(by_phone, by_waba)


def record_time(entry_time: int | None, received_at: float | None) -> float | None:
    """A record's own time: the entry's `time` when it has one, else its receipt; None if neither."""
    if entry_time is not None and entry_time > 0:
        return float(entry_time)
    if received_at:
        return received_at
    return None


def is_purged(
    purges: Purges, phone_number_id: str, waba_id: str, entry_time: int | None, received_at: float | None
) -> bool:
    """Whether a record of this business is older than a purge of it (at or before `purged_at`:
    purged_at is a whole second, and the purge deletes what was written up to then)."""
    if not purges:
        return False
    if phone_number_id:
        purged_at = purges.by_phone.get(phone_number_id, 0)
    else:
        purged_at = purges.by_waba.get(waba_id, 0) if waba_id else 0
    if purged_at == 0:
        return False
    at = record_time(entry_time, received_at)
    # A record with no time at all cannot be shown to be newer: it is dropped with the business.
    return at is None or at <= purged_at


def state_key_of(key: str, phone_number_id: str) -> bool:
    """Whether a worker state key (`streams.processor` tables: the number, or the number and `|...`)
    is the business's."""
    return key == phone_number_id or key.startswith(phone_number_id + "|")

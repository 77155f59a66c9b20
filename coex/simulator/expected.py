"""The end state a correct pipeline reaches from a simulation, business by business.

Compact whatever the size: counts by source, type and status, and an order-independent
fingerprint of the message ids, which ClickHouse can compute too:

    SELECT phone_number_id, groupBitXor(reinterpretAsUInt64(MD5(message_id)))
    FROM messages FINAL GROUP BY phone_number_id

Per-message detail is kept only when asked for (small runs and tests).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# What the expected state needs of each message: (id, type, direction, contact, status, text).
Fact = tuple[str, str, str, str, str, str]


def id_fingerprint(message_id: str) -> int:
    """The first 8 bytes of MD5(message_id), little-endian: `reinterpretAsUInt64(MD5(id))`."""
    return int.from_bytes(hashlib.md5(message_id.encode()).digest()[:8], "little")


@dataclass(frozen=True, slots=True)
class ExpectedMessage:
    type: str  # the real type; `media_placeholder` for media older than the follow-up window
    direction: str  # inbound | outbound
    source: str  # history | echo | cloud_api
    contact: str  # the WhatsApp user's number (the thread)
    status: str  # latest known, lower-case; '' when none was ever sent
    text: str  # body, caption, button or reply title; '' if none


@dataclass(frozen=True, slots=True)
class ExpectedContact:
    full_name: str  # '' once removed: a removal carries no names
    first_name: str
    deleted: bool
    changed_at: int


@dataclass(slots=True)
class ExpectedHistory:
    state: str  # complete | declined
    progress: int
    messages_received: int
    chunks_received: int
    phases_complete: list[int]
    error_code: int | None


@dataclass(frozen=True, slots=True)
class ExpectedAccountEvent:
    event: str
    phone_number: str
    event_at: int


@dataclass(slots=True)
class ExpectedBusiness:
    waba_id: str
    phone_number_id: str
    display_phone_number: str
    history_sync: ExpectedHistory
    contacts: dict[str, ExpectedContact] = field(default_factory=dict)
    account_events: list[ExpectedAccountEvent] = field(default_factory=list)
    message_count: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    message_ids_xor: int = 0
    messages: dict[str, ExpectedMessage] | None = None  # only with detail

    def add(self, source: str, facts: list[Fact]) -> None:
        """Count messages of one source in: (id, type, direction, contact, status, text) tuples."""
        self.message_count += len(facts)
        self.by_source[source] += len(facts)
        self.by_type.update(f[1] for f in facts)
        self.by_status.update(f[4] for f in facts)
        xor = self.message_ids_xor
        for f in facts:
            xor ^= id_fingerprint(f[0])
        self.message_ids_xor = xor
        if self.messages is not None:
            for mid, kind, direction, contact, status, text in facts:
                self.messages[mid] = ExpectedMessage(kind, direction, source, contact, status, text)

    @property
    def offboarded(self) -> bool:
        return any(e.event in ("PARTNER_REMOVED", "ACCOUNT_OFFBOARDED") for e in self.account_events)


@dataclass(slots=True)
class Expected:
    businesses: dict[str, ExpectedBusiness]  # by phone_number_id
    webhooks: int = 0  # deliveries, redeliveries included
    redeliveries: int = 0
    messages: int = 0  # unique messages over all businesses
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "webhooks": self.webhooks,
            "redeliveries": self.redeliveries,
            "messages": self.messages,
            "bytes": self.bytes,
            "businesses": {},
        }
        for pnid, biz in self.businesses.items():
            doc: dict[str, Any] = {
                "waba_id": biz.waba_id,
                "phone_number_id": biz.phone_number_id,
                "display_phone_number": biz.display_phone_number,
                "messages": {
                    "count": biz.message_count,
                    "by_source": dict(sorted(biz.by_source.items())),
                    "by_type": dict(sorted(biz.by_type.items())),
                    "by_status": dict(sorted(biz.by_status.items())),
                    "ids_xor": biz.message_ids_xor,
                },
                "contacts": {number: asdict(c) for number, c in sorted(biz.contacts.items())},
                "contacts_alive": sum(not c.deleted for c in biz.contacts.values()),
                "history_sync": asdict(biz.history_sync),
                "account_events": [asdict(e) for e in biz.account_events],
                "offboarded": biz.offboarded,
            }
            if biz.messages is not None:
                doc["messages"]["detail"] = {mid: asdict(m) for mid, m in sorted(biz.messages.items())}
            out["businesses"][pnid] = doc
        return out

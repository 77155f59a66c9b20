"""The end state a correct pipeline reaches from a simulation, business by business.

Compact whatever the size: counts by source, type and status, and an order-independent
fingerprint of the message ids, which ClickHouse can compute too:

    SELECT phone_number_id, groupBitXor(reinterpretAsUInt64(MD5(message_id)))
    FROM messages FINAL GROUP BY phone_number_id

Users are counted the way the contract keys them: one per user (their number when any record of
the business gave it, else their BSUID), never one per distinct phone field, since a user who
hides their number arrives with ''.

Per-message detail is kept only when asked for (small runs and tests).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# What the expected state needs of each message: (id, type, direction, contact, user_id, status,
# text); `contact` is the number the record gives ('' when withheld), `user_id` the user's BSUID.
Fact = tuple[str, str, str, str, str, str, str]


def id_fingerprint(message_id: str) -> int:
    """The first 8 bytes of MD5(message_id), little-endian: `reinterpretAsUInt64(MD5(id))`."""
    return int.from_bytes(hashlib.md5(message_id.encode()).digest()[:8], "little")


@dataclass(frozen=True, slots=True)
class ExpectedMessage:
    type: str  # the real type; `media_placeholder` for media older than the follow-up window
    direction: str  # inbound | outbound
    source: str  # history | echo | cloud_api
    contact: str  # the user's number as the record gives it; '' when withheld
    user_id: str  # the user's BSUID, in every record
    status: str  # latest known, lower-case; '' when none was ever sent
    text: str  # body, caption, button or reply title; '' if none


@dataclass(frozen=True, slots=True)
class ExpectedContact:
    full_name: str  # '' once removed: a removal carries no names
    first_name: str
    deleted: bool
    changed_at: int
    user_id: str  # the user's BSUID
    username: str  # as the newest change gives it; '' if none


@dataclass(slots=True)
class ExpectedUser:
    phone: str  # the user's number, whether or not any record shows it
    user_id: str
    username: str  # '' for a user without one


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
    contacts: dict[str, ExpectedContact] = field(default_factory=dict)  # by BSUID; see `contacts_by_user`
    people: dict[str, ExpectedUser] = field(default_factory=dict)  # every planned user, by BSUID
    phone_seen: set[str] = field(default_factory=set)  # BSUIDs some record gave the number with
    phone_withheld: set[str] = field(default_factory=set)  # BSUIDs some record withheld the number of
    by_user: Counter[str] = field(default_factory=Counter)  # messages by BSUID
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
        self.by_status.update(f[5] for f in facts)
        self.by_user.update(f[4] for f in facts)
        self.phone_seen.update(f[4] for f in facts if f[3])
        self.phone_withheld.update(f[4] for f in facts if not f[3])
        xor = self.message_ids_xor
        for f in facts:
            xor ^= id_fingerprint(f[0])
        self.message_ids_xor = xor
        if self.messages is not None:
            for mid, kind, direction, contact, user_id, status, text in facts:
                self.messages[mid] = ExpectedMessage(kind, direction, source, contact, user_id, status, text)

    def user_key(self, user_id: str) -> str:
        """How the pipeline keys the user: their number once a record gave it with the BSUID, else the BSUID."""
        return self.people[user_id].phone if user_id in self.phone_seen else user_id

    @property
    def users(self) -> set[str]:
        """BSUIDs of the users some record names: who sent or got a message, or is in the contacts."""
        return set(self.by_user) | set(self.contacts)

    @property
    def users_hiding(self) -> set[str]:
        """Users some record withheld the number of (those who switched included)."""
        return self.users & self.phone_withheld

    @property
    def users_switching(self) -> set[str]:
        """Users some records give the number of (the older ones) and others do not."""
        return self.users_hiding & self.phone_seen

    def contacts_by_user(self) -> dict[str, ExpectedContact]:
        return {self.user_key(u): c for u, c in self.contacts.items()}

    def contact_json(self, key: str, contact: ExpectedContact) -> dict[str, Any]:
        """A contact as its row should read: both identifiers once the number is known."""
        number = key if key != contact.user_id else ""
        return asdict(contact) | {"contact_wa_id": number}

    def users_json(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for user_id in self.users:
            person = self.people[user_id]
            key = self.user_key(user_id)
            hides = "never" if user_id not in self.phone_withheld else "switched" if key != user_id else "always"
            out[key] = {
                "contact_wa_id": person.phone if key == person.phone else "",
                "user_id": user_id,
                "username": person.username,
                "hides_number": hides,
                "messages": self.by_user[user_id],
                "in_contacts": user_id in self.contacts,
            }
        return out

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

    @property
    def users(self) -> int:
        return sum(len(b.users) for b in self.businesses.values())

    @property
    def users_hiding_number(self) -> int:
        return sum(len(b.users_hiding) for b in self.businesses.values())

    @property
    def users_switching(self) -> int:
        return sum(len(b.users_switching) for b in self.businesses.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "webhooks": self.webhooks,
            "redeliveries": self.redeliveries,
            "messages": self.messages,
            "bytes": self.bytes,
            "users": self.users,
            "users_hiding_number": self.users_hiding_number,
            "users_switching": self.users_switching,
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
                "contacts": {key: biz.contact_json(key, c) for key, c in sorted(biz.contacts_by_user().items())},
                "users": {key: doc for key, doc in sorted(biz.users_json().items())},
                "users_hiding_number": len(biz.users_hiding),
                "users_switching": len(biz.users_switching),
                "contacts_alive": sum(not c.deleted for c in biz.contacts.values()),
                "history_sync": asdict(biz.history_sync),
                "account_events": [asdict(e) for e in biz.account_events],
                "offboarded": biz.offboarded,
            }
            if biz.messages is not None:
                doc["messages"]["detail"] = {
                    mid: asdict(m) | {"user": biz.user_key(m.user_id)} for mid, m in sorted(biz.messages.items())
                }
            out["businesses"][pnid] = doc
        return out

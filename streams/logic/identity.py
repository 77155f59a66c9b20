"""Who a user is, whichever identifiers a record carries: the rule, stated once.

Within one business (phone_number_id) a WhatsApp user may be named by a phone number, a BSUID
(business-scoped user ID), or both; a user who hides their number arrives with the phone as "".

- A record that carries a phone number and a BSUID together **links** them: one user. A BSUID
  keeps the phone of its newest sighting by the records' own times, the larger phone at a tie (a
  user who changes number gets a new BSUID, so one phone per BSUID is the rule, not the exception).
- A user's **key** is their phone number when it is known (given, or linked to their BSUID), else
  their BSUID. Phone numbers are digits and a BSUID is `CC.` + alphanumerics: no key is both.
- Two BSUIDs are two users unless they link to one phone; "" is never an identifier, so users
  whose numbers are withheld never merge.

The state per (business, BSUID) is a `Link`; the stream keeps it in a changelog-backed table and
the sink's `user_identities` holds the same facts for analysts (its `threads` view groups messages
on this rule). Once every record is seen, the keys do not depend on the order they came in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from schemas.rows import IdentityRow
from streams.logic import stored


class Sighting(NamedTuple):
    """The identifiers one record (or one thread of a history chunk) names a user by."""

    wa_id: str  # phone number, '' when withheld
    user_id: str  # BSUID, '' when the platform gave none
    username: str
    first_at: int  # unix seconds: the earliest and newest own time of the records
    last_at: int


@dataclass(slots=True)
class Link:
    phone: str
    username: str
    first_at: int
    last_at: int


# Lookup of a business's BSUID -> its link, if any.
Links = Callable[[str], Link | None]


def sightings(named: Iterable[tuple[str, str, str, int]]) -> list[Sighting]:
    """One sighting per distinct (phone, BSUID) of (phone, BSUID, username, time) tuples, spanning
    their times; the username of the newest. Tuples naming no one are left out."""
    seen: dict[tuple[str, str], Sighting] = {}
    for wa_id, user_id, username, at in named:
        if not wa_id and not user_id:
            continue
        old = seen.get((wa_id, user_id))
        if old is None:
            seen[(wa_id, user_id)] = Sighting(wa_id, user_id, username, at, at)
            continue
        newer = at >= old.last_at
        seen[(wa_id, user_id)] = Sighting(
            wa_id,
            user_id,
            (username or old.username) if newer else (old.username or username),
            min(old.first_at, at),
            max(old.last_at, at),
        )
    return list(seen.values())


def observe(current: Link | None, sighting: Sighting) -> Link | None:
    """The BSUID's link after a sighting; None when the sighting links nothing (no phone or BSUID)."""
    if not (sighting.wa_id and sighting.user_id):
        return current
    if current is None:
        return Link(sighting.wa_id, sighting.username, sighting.first_at, sighting.last_at)
    newer = (sighting.last_at, sighting.wa_id) >= (current.last_at, current.phone)
    return Link(
        phone=sighting.wa_id if newer else current.phone,
        username=(sighting.username or current.username) if newer else (current.username or sighting.username),
        first_at=min(current.first_at, sighting.first_at),
        last_at=max(current.last_at, sighting.last_at),
    )


def phone_of(wa_id: str, user_id: str, links: Links) -> str:
    """The user's phone number: the record's own, else its BSUID's link's, else ''."""
    if wa_id or not user_id:
        return wa_id
    link = links(user_id)
    return link.phone if link is not None else ""


def user_key(wa_id: str, user_id: str, links: Links) -> str:
    """The user's key within the business: their phone number if known, else their BSUID."""
    return phone_of(wa_id, user_id, links) or user_id


def group_users(records: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], str]:
    """The rule applied to a whole history at once: each (phone, BSUID, time) record -> the key of
    its user. The reference for the incremental form (`observe` records one at a time, `user_key`
    after), which gives the same keys for any order of the records, as the tests check."""
    records = list(records)
    newest: dict[str, tuple[int, str]] = {}
    for wa_id, user_id, at in records:
        if wa_id and user_id:
            newest[user_id] = max(newest.get(user_id, (at, wa_id)), (at, wa_id))
    return {
        (wa_id, user_id): wa_id or (newest[user_id][1] if user_id in newest else user_id)
        for wa_id, user_id, _ in records
    }


def row(phone_number_id: str, waba_id: str, user_id: str, link: Link) -> IdentityRow:
    return IdentityRow(
        phone_number_id=phone_number_id,
        contact_user_id=user_id,
        contact_wa_id=link.phone,
        username=link.username,
        first_seen_at=link.first_at,
        last_seen_at=link.last_at,
        waba_id=waba_id,
        version=link.last_at,
    )


def fill_phones(phones: Mapping[str, str], wa_ids: list[str], user_ids: list[str]) -> list[str] | None:
    """`wa_ids` with each '' whose BSUID is in `phones` filled; None when nothing changes."""
    filled = [phones.get(uid, "") if not wa and uid else wa for wa, uid in zip(wa_ids, user_ids, strict=True)]
    return filled if filled != wa_ids else None


FORMAT = 1


def encode(link: Link) -> bytes:
    return orjson.dumps({stored.FORMAT_KEY: FORMAT, **stored.fields_of(link)})


def decode(data: bytes) -> Link:
    return stored.build(Link, orjson.loads(data))

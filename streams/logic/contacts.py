"""Fold `smb_app_state_sync` contact changes: one row per user, the newest change by its own timestamp.

The state per (phone_number_id, user key: streams/logic/identity.py) is the version of the newest
change applied (`contact_version`: timestamp, then a removal beats an add at the same second) and
that change's row. Removals are kept as tombstones so that an older add arriving late cannot bring
a contact back. A change older than the state is skipped; an equal one (a redelivery) is written
again, which is harmless and keeps replays after a crash complete.

A user first known by BSUID alone and later linked to a phone number moves to the phone's key:
the BSUID's row is written once more with `merged = 1` (the table drops it under FINAL), and its
state joins the phone's by the same newest-wins rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from schemas.rows import ContactRow
from streams.logic import stored

# A merged row's version: above every change's, so it stays the key's last word.
MERGED_VERSION = 1 << 62


@dataclass(slots=True)
class Folded:
    version: int
    row: ContactRow | None  # None in state written before rows were kept


def key(phone_number_id: str, user_key: str) -> str:
    return f"{phone_number_id}|{user_key}"


def apply(current: Folded | None, row: ContactRow) -> bool:
    """Whether `row` is at least as new as the state (then write it and keep it)."""
    return current is None or row.version >= current.version


def merged(phone_number_id: str, waba_id: str, user_id: str) -> ContactRow:
    """The row that retires a BSUID's key once its user is known by phone."""
    return ContactRow(
        phone_number_id=phone_number_id,
        contact_wa_id="",
        full_name="",
        first_name="",
        deleted=0,
        changed_at=0,
        waba_id=waba_id,
        version=MERGED_VERSION,
        contact_user_id=user_id,
        user_key=user_id,
        merged=1,
    )


FORMAT = 1


def encode(state: Folded) -> bytes:
    return orjson.dumps({stored.FORMAT_KEY: FORMAT, "version": state.version, "row": stored.row_doc(state.row)})


def decode(data: bytes) -> Folded:
    if data[:1] != b"{":
        # Written before named records: the version alone, in decimal.
        return Folded(int(data), None)
    doc = orjson.loads(data)
    return Folded(int(doc["version"]), stored.row_from(ContactRow, doc.get("row")))

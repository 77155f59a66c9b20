"""Fold `smb_app_state_sync` contact changes: the newest change by its own timestamp wins.

The state per (phone_number_id, contact) is the version of the newest change applied
(`contact_version`: timestamp, then a removal beats an add at the same second). Removals are
kept as tombstones so that an older add arriving late cannot bring a contact back. A change older
than the state is skipped; an equal one (a redelivery) is written again, which is harmless and
keeps replays after a crash complete.
"""

from __future__ import annotations

from schemas.rows import ContactRow


def key(row: ContactRow) -> str:
    return f"{row.phone_number_id}|{row.contact_wa_id}"


def apply(current_version: int | None, row: ContactRow) -> bool:
    """Whether `row` is at least as new as the state (then write it and keep its version)."""
    return current_version is None or row.version >= current_version


def encode(version: int) -> bytes:
    return str(version).encode()


def decode(data: bytes) -> int:
    return int(data)

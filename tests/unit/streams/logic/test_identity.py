"""One user whichever identifiers a record carries, in any order of arrival (streams/logic/identity.py),
and through the processor: one contact row per user, messages filled with a phone an earlier link gave."""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.normalize import Normalized
from schemas.rows import ContactRow, MessageRow, contact_version
from streams.logic import identity
from streams.prepare import Prepared
from streams.processor import Processor, Record
from tests.doubles import DictStore

PNID = "106540352242922"


@dataclass(frozen=True)
class User:
    phone: str
    bsuid: str


# Users of one business: a phone and a BSUID each (a user without a BSUID predates April 2026).
users = st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True).map(
    lambda ns: [User(f"1555{n:07d}", f"US.{n}{n}" if n % 5 else "") for n in ns]
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[User], list[tuple[str, str, int]]]:
    """Records naming users by phone, by BSUID or by both (each user with a BSUID seen with both once)."""
    people = draw(users)
    records: list[tuple[str, str, int]] = []
    for user in people:
        shapes = ["phone", "both", "bsuid"] if user.bsuid else ["phone"]
        for shape in draw(st.lists(st.sampled_from(shapes), min_size=1, max_size=5)):
            at = draw(st.integers(1, 100))
            records.append((user.phone if shape != "bsuid" else "", user.bsuid if shape != "phone" else "", at))
        if user.bsuid:
            records.append((user.phone, user.bsuid, draw(st.integers(1, 100))))
    return people, records


@given(histories(), st.randoms(use_true_random=False))
def test_any_order_of_arrival_gives_the_same_users(
    history: tuple[list[User], list[tuple[str, str, int]]], rnd: random.Random
) -> None:
    people, records = history
    rnd.shuffle(records)
    links: dict[str, identity.Link] = {}
    for wa_id, user_id, at in records:
        link = identity.observe(links.get(user_id), identity.Sighting(wa_id, user_id, "", at, at))
        if link is not None:
            links[user_id] = link
    keys = {(wa, uid): identity.user_key(wa, uid, links.get) for wa, uid, _ in records}
    assert keys == identity.group_users(records)
    by_user = {
        user: {keys[(wa, uid)] for wa, uid, _ in records if wa == user.phone or (uid and uid == user.bsuid)}
        for user in people
    }
    assert all(found == {user.phone} for user, found in by_user.items())


def test_two_withheld_users_never_merge() -> None:
    records = [("", "US.1", 1), ("", "BR.2", 2), ("", "US.1", 3)]
    assert identity.group_users(records) == {("", "US.1"): "US.1", ("", "BR.2"): "BR.2"}


def test_a_bsuid_keeps_the_phone_of_its_newest_sighting_whatever_came_first() -> None:
    old, new = identity.Sighting("15550001", "US.1", "", 10, 10), identity.Sighting("15550002", "US.1", "pablo", 20, 20)
    one = identity.observe(identity.observe(None, old), new)
    other = identity.observe(identity.observe(None, new), old)
    assert one == other == identity.Link("15550002", "pablo", 10, 20)


def test_sightings_span_the_times_of_each_pair_and_leave_out_records_naming_no_one() -> None:
    named = [("1555", "US.1", "", 5), ("1555", "US.1", "pablo", 9), ("", "", "", 1), ("", "US.2", "ana", 3)]
    assert sorted(identity.sightings(named)) == [
        identity.Sighting("", "US.2", "ana", 3, 3),
        identity.Sighting("1555", "US.1", "pablo", 5, 9),
    ]


def test_a_link_decodes_by_name() -> None:
    link = identity.Link("15550001", "pablo", 1, 2)
    assert identity.decode(identity.encode(link)) == link
    assert identity.decode(
        orjson.dumps({"format": 1, "phone": "1", "username": "", "first_at": 1, "last_at": 2, "new": 0})
    ) == identity.Link("1", "", 1, 2)


# ---- through the processor ------------------------------------------------------------------------


def _contact(user: User, shape: str, at: int) -> ContactRow:
    return ContactRow(
        PNID, user.phone if shape != "bsuid" else "", f"Name {at}", "Name", 0, at, "waba", contact_version(at, False),
        contact_user_id=user.bsuid if shape != "phone" else "",
    )  # fmt: skip


def _message(user: User, shape: str, at: int, n: int) -> MessageRow:
    return MessageRow(
        PNID, "waba", f"wamid.{n}", user.phone if shape != "bsuid" else "", "inbound", "cloud_api", "text", "hi",
        "", "", "", at, None, None, "{}", "", None, 0, contact_user_id=user.bsuid if shape != "phone" else "",
    )  # fmt: skip


def _process(processor: Processor, store: DictStore, normalized: Normalized, offset: int) -> dict[str, list[object]]:
    out = processor.process(Record("coex.x", 0, offset, PNID.encode(), b"{}"), 1.0, Prepared(normalized, [], 1.0))
    assert out.dead_letters == []
    store.apply(out.writes)
    return out.rows


def _final(rows: list[ContactRow]) -> dict[tuple[str, str], ContactRow]:
    """ReplacingMergeTree(version, merged) under FINAL: the highest version (the last among equals) of
    each key, gone if it is merged."""
    table: dict[tuple[str, str], ContactRow] = {}
    for row in rows:
        key = (row.phone_number_id, row.user_key)
        if key not in table or row.version >= table[key].version:
            table[key] = row
    return {key: row for key, row in table.items() if not row.merged}


@settings(max_examples=60, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_one_contact_row_per_user_whatever_the_order(
    history: tuple[list[User], list[tuple[str, str, int]]], rnd: random.Random
) -> None:
    people, records = history
    by_phone = {u.phone: u for u in people}
    by_bsuid = {u.bsuid: u for u in people if u.bsuid}
    items: list[Normalized] = []
    for n, (wa, uid, at) in enumerate(records):
        user = by_phone[wa] if wa else by_bsuid[uid]
        shape = "both" if wa and uid else ("phone" if wa else "bsuid")
        kind = rnd.choice(["contact", "message"])
        normalized = Normalized(kind, PNID, "waba", "15550783881")
        if kind == "contact":
            normalized.contacts.append(_contact(user, shape, at))
        else:
            normalized.messages.append(_message(user, shape, at, n))
        items.append(normalized)
    rnd.shuffle(items)
    store, processor = DictStore(), Processor(DictStore(), history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    processor.store = store
    written: list[ContactRow] = []
    for offset, normalized in enumerate(items):
        written.extend(_process(processor, store, normalized, offset).get("contacts", []))  # type: ignore[arg-type]
    final = _final(written)
    contacted = {
        by_phone[r.contact_wa_id] if r.contact_wa_id else by_bsuid[r.contact_user_id] for r in written if not r.merged
    }
    assert len(final) == len(contacted)  # one row per user with a contact change
    for row in final.values():
        user = by_phone.get(row.contact_wa_id) or by_bsuid[row.user_key]
        linked = any(wa and uid for wa, uid, _ in records if uid and uid == user.bsuid)
        assert row.user_key == (user.phone if row.contact_wa_id or linked else user.bsuid)


def test_a_message_without_a_phone_gets_the_phone_an_earlier_record_linked() -> None:
    user = User("15550001234", "US.77")
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    first = Normalized("messages", PNID, "waba", "15550783881", messages=[_message(user, "both", 10, 1)])
    rows = _process(processor, store, first, 0)
    (link,) = rows["user_identities"]
    assert (link.contact_user_id, link.contact_wa_id, link.first_seen_at) == ("US.77", "15550001234", 10)
    later = Normalized("messages", PNID, "waba", "15550783881", messages=[_message(user, "bsuid", 20, 2)])
    (message,) = _process(processor, store, later, 1)["messages"]
    assert (message.contact_wa_id, message.contact_user_id) == ("15550001234", "US.77")  # type: ignore[attr-defined]
    stranger = Normalized(
        "messages", PNID, "waba", "15550783881", messages=[_message(User("", "US.88"), "bsuid", 30, 3)]
    )
    (message,) = _process(processor, store, stranger, 2)["messages"]
    assert (message.contact_wa_id, message.contact_user_id) == ("", "US.88")  # type: ignore[attr-defined]


def test_a_contact_known_by_bsuid_moves_to_the_phone_once_linked() -> None:
    user = User("15550001234", "US.77")
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=1e9, media_pending_ttl_s=1e9)
    hidden = Normalized("smb_app_state_sync", PNID, "waba", "15550783881", contacts=[_contact(user, "bsuid", 10)])
    (row,) = _process(processor, store, hidden, 0)["contacts"]
    assert (row.user_key, row.contact_wa_id, row.full_name) == ("US.77", "", "Name 10")  # type: ignore[attr-defined]
    linked = Normalized("messages", PNID, "waba", "15550783881", messages=[_message(user, "both", 5, 1)])
    rows = _process(processor, store, linked, 1)["contacts"]
    assert [(r.user_key, r.merged, r.contact_wa_id, r.full_name) for r in rows] == [  # type: ignore[attr-defined]
        ("US.77", 1, "", ""),
        ("15550001234", 0, "15550001234", "Name 10"),
    ]

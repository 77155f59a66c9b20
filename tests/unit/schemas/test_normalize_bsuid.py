"""Users who hide their number: every webhook kind read with withheld numbers ('') and BSUIDs.

The deliveries are tests/fixtures/bsuid (README there); the properties generate threads and
contacts of users with and without a number or a BSUID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import ChangeError
from schemas.normalize import Normalized, normalize_change, normalize_value
from schemas.routing import decode_record, split_delivery
from schemas.rows import ContactRow, MessageRow, StatusRow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bsuid"
WABA, PNID, BUSINESS, USER = "102290129340398", "106540352242922", "15550783881", "16505551234"
META = {"display_phone_number": BUSINESS, "phone_number_id": PNID}
A, B, C = "US.13491208655302741918", "BR.1502576394655843", "US.ENT.11815799212886844830"
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Who = tuple[str, str, str]  # (contact_wa_id, contact_user_id, contact_username)


def fixture(name: str) -> Normalized:
    """A fixture delivery as the worker reads it: split, wrapped for Kafka, decoded, normalized."""
    [record] = split_delivery((FIXTURES / f"{name}.json").read_bytes(), "d-1", 1_800_000_000.0)
    return normalize_change(decode_record(record.value))


def norm(field: str, value: dict[str, Any]) -> Normalized:
    return normalize_value(field, value, waba_id=WABA, entry_time=1739230990, received_at=1_800_000_000.0)


def who(row: MessageRow) -> Who:
    return row.contact_wa_id, row.contact_user_id, row.contact_username


def chunk_rows(out: Normalized) -> list[MessageRow]:
    return [row for chunk in out.history_chunks for row in chunk.messages]


def chunk(*threads: dict[str, Any], business: str = BUSINESS) -> dict[str, Any]:
    return {
        "metadata": {"display_phone_number": business, "phone_number_id": PNID},
        "history": [{"metadata": {"phase": 1, "chunk_order": 2, "progress": 30}, "threads": list(threads)}],
    }


def message(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"wamid.{n}", "timestamp": str(1739230000 + n), "type": "text", "text": {"body": f"m{n}"}, **fields}


# ---- history chunks ----------------------------------------------------------------------------


def test_a_chunk_with_two_withheld_users_and_one_with_both_identifiers() -> None:
    out = fixture("history_chunk_withheld")
    assert out.rejected == [] and out.errors == []
    got = [(r.message_id, r.direction, *who(r), r.status) for r in chunk_rows(out)]
    assert got == [
        ("wamid.A1", "outbound", "", A, "pablo.m", "read"),
        ("wamid.A2", "inbound", "", A, "pablo.m", "read"),
        ("wamid.A3", "inbound", "", A, "pablo.m", "delivered"),
        ("wamid.B1", "inbound", "", B, "ana_b", "read"),
        ("wamid.B2", "outbound", "", B, "ana_b", "delivered"),
        ("wamid.C1", "inbound", USER, C, "", "read"),
        ("wamid.C2", "outbound", USER, C, "", "sent"),
    ]


def test_a_thread_without_context_takes_the_bsuid_of_each_message() -> None:
    # BSUID only on the message: a thread by number whose messages carry from_user_id / to_user_id.
    thread = {
        "id": USER,
        "messages": [
            message(1, **{"from": USER, "from_user_id": A}),
            message(2, **{"from": BUSINESS, "to": USER, "to_user_id": A}),
            message(3, **{"from": USER}),
        ],
    }
    rows = chunk_rows(norm("history", chunk(thread)))
    assert [(r.direction, *who(r)) for r in rows] == [
        ("inbound", USER, A, ""),
        ("outbound", USER, A, ""),
        ("inbound", USER, "", ""),
    ]


def test_the_thread_number_comes_from_context_when_its_id_is_empty() -> None:
    thread = {"id": "", "context": {"wa_id": USER, "user_id": A}, "messages": [message(1, **{"from": USER})]}
    [row] = chunk_rows(norm("history", chunk(thread)))
    assert (row.direction, *who(row)) == ("inbound", USER, A, "")


@pytest.mark.parametrize(
    ("fields", "direction"),
    [
        ({"from": ""}, "inbound"),  # the business's number is never withheld
        ({"from": "", "from_user_id": A}, "inbound"),
        ({"from_user_id": A}, "inbound"),
        ({"from": "", "history_context": {"from_me": True}}, "inbound"),  # `from` says who sent it
        ({"from": BUSINESS, "to": ""}, "outbound"),
        ({"to": "", "to_user_id": A}, "outbound"),
        ({"to_user_id": A}, "outbound"),
        ({"to": ""}, "outbound"),  # only the business's messages carry `to`
        ({"history_context": {"from_me": True}}, "outbound"),
        ({}, "inbound"),
        # A WhatsApp ID may spell the business number otherwise (Mexico: 521 for 52); the user's
        # number being withheld, a number in `from` is the business's.
        ({"from": "5215512345678"}, "outbound"),
    ],
)
def test_direction_in_a_thread_whose_number_is_withheld(fields: dict[str, Any], direction: str) -> None:
    thread = {"id": "", "context": {"wa_id": "", "user_id": A}, "messages": [message(1, **fields)]}
    [row] = chunk_rows(norm("history", chunk(thread, business="525512345678")))
    assert (row.direction, *who(row)) == (direction, "", A, "")


def test_a_thread_that_names_no_user_refuses_its_change() -> None:
    for thread, path in [
        ({"id": "", "messages": []}, ".id"),
        ({"id": "", "context": {"wa_id": "", "user_id": ""}, "messages": []}, ".id"),
        ({"id": None, "context": {"user_id": A}, "messages": []}, ".id"),
        ({"id": "", "context": "US.1", "messages": []}, ".context"),
        ({"id": "", "context": {"user_id": 15}, "messages": []}, ".context.user_id"),
        ({"id": "", "context": {"wa_id": 1650, "user_id": A}, "messages": []}, ".context.wa_id"),
    ]:
        with pytest.raises(ChangeError) as caught:
            norm("history", chunk({"id": USER, "messages": [message(0, **{"from": USER})]}, thread))
        assert caught.value.path == f"$.value.history[0].threads[1]{path}"


def test_a_username_that_is_not_a_string_is_read_as_empty() -> None:
    thread = {"id": "", "context": {"user_id": A, "username": 7}, "messages": [message(1, **{"from": ""})]}
    [row] = chunk_rows(norm("history", chunk(thread)))
    assert who(row) == ("", A, "")


@pytest.mark.parametrize("key", ["from_user_id", "to_user_id"])
@pytest.mark.parametrize("bad", [15, ["US.1"], {"id": "US.1"}, True])
def test_a_message_bsuid_that_is_not_a_string_sets_the_message_aside(key: str, bad: Any) -> None:
    thread = {"id": "", "context": {"user_id": A}, "messages": [message(1, **{"from": ""}), message(2, **{key: bad})]}
    out = norm("history", chunk(thread))
    assert [r.message_id for r in chunk_rows(out)] == ["wamid.1"]
    [item] = out.rejected
    assert item.path == f"$.value.history[0].threads[0].messages[1].{key}"
    assert orjson.loads(item.raw)["id"] == "wamid.2"


# ---- history media follow-ups ------------------------------------------------------------------


def test_followups_of_a_withheld_user_take_their_contacts_entry() -> None:
    out = fixture("history_followup_withheld")
    assert out.rejected == []
    got = [(r.message_id, r.direction, r.source, r.media_id, *who(r)) for r in out.media_followups]
    assert got == [
        ("wamid.A3", "inbound", "history", "24230790383178626", "", A, "pablo.m"),
        ("wamid.A4", "outbound", "history", "24230790383178627", "", A, "pablo.m"),
    ]
    [placeholder] = [r for r in chunk_rows(fixture("history_chunk_withheld")) if r.message_id == "wamid.A3"]
    assert (placeholder.direction, *who(placeholder)) == ("inbound", *who(out.media_followups[0]))
    assert out.media_followups[0].version > placeholder.version


def test_followups_match_their_contacts_entry_by_bsuid_or_number() -> None:
    contacts = [
        {"profile": {"username": "ana_b"}, "wa_id": "", "user_id": B},
        {"profile": {"name": "Chris"}, "wa_id": USER, "user_id": C},
        {"profile": {"username": "pablo.m"}, "wa_id": "", "user_id": A},
    ]
    messages = [
        message(1, **{"from": "", "from_user_id": A}),
        message(2, **{"from": USER}),  # by number: the BSUID comes from the entry
        message(3, **{"from": BUSINESS, "to": "", "to_user_id": B}),
        message(4, **{"from": BUSINESS}),  # names no user, and there are three: none
        message(5, **{"from": "", "from_user_id": "BR.999"}),  # in no entry: its own BSUID only
    ]
    out = norm("history", {"metadata": META, "contacts": contacts, "messages": messages})
    assert [(r.direction, *who(r)) for r in out.media_followups] == [
        ("inbound", "", A, "pablo.m"),
        ("inbound", USER, C, ""),
        ("outbound", "", B, "ana_b"),
        ("outbound", "", "", ""),
        ("inbound", "", "BR.999", ""),
    ]


def test_a_lone_contacts_entry_names_a_message_that_names_no_other_user() -> None:
    contacts = [{"profile": {"username": "pablo.m"}, "wa_id": "", "user_id": A}]
    messages = [
        message(1, **{"from": BUSINESS}),
        message(2, **{"from": BUSINESS, "to": USER}),
        message(3, **{"from": "", "from_user_id": B}),  # another user: not the entry's
    ]
    out = norm("history", {"metadata": META, "contacts": contacts, "message_echoes": messages})
    assert [who(r) for r in out.media_followups] == [("", A, "pablo.m"), (USER, A, "pablo.m"), ("", B, "")]


def test_a_contacts_entry_that_cannot_be_read_is_set_aside_and_names_nothing() -> None:
    contacts = [{"wa_id": "", "user_id": 42}, "A", {"wa_id": 1650, "user_id": A}]
    value = {"metadata": META, "contacts": contacts, "messages": [message(1, **{"from": "", "from_user_id": A})]}
    out = norm("history", value)
    assert [item.path for item in out.rejected] == [
        "$.value.contacts[0].user_id",
        "$.value.contacts[1]",
        "$.value.contacts[2].wa_id",
    ]
    assert [who(r) for r in out.media_followups] == [("", A, "")]


# ---- smb_message_echoes ------------------------------------------------------------------------


def test_echo_to_a_withheld_user() -> None:
    out = fixture("smb_message_echoes_withheld")
    [row] = out.messages
    assert (row.source, row.direction, *who(row)) == ("echo", "outbound", "", A, "pablo.m")


@pytest.mark.parametrize(
    ("echo", "contacts", "expected"),
    [
        ({"to": USER, "to_user_id": C}, [], (USER, C, "")),
        ({"to": USER}, [{"wa_id": USER, "user_id": C, "profile": {"username": "chris"}}], (USER, C, "chris")),
        ({"to": "", "to_user_id": A}, [], ("", A, "")),
        ({"to_user_id": A}, [], ("", A, "")),
        ({"to": ""}, [{"wa_id": "", "user_id": A, "profile": {"username": "pablo.m"}}], ("", A, "pablo.m")),
    ],
)
def test_echo_identifiers(echo: dict[str, Any], contacts: list[dict[str, Any]], expected: Who) -> None:
    value = {"metadata": META, "contacts": contacts, "message_echoes": [message(1, **{"from": BUSINESS, **echo})]}
    [row] = norm("smb_message_echoes", value).messages
    assert (row.direction, *who(row)) == ("outbound", *expected)


def test_an_echo_that_names_no_user_is_set_aside() -> None:
    two = [{"wa_id": "", "user_id": A}, {"wa_id": "", "user_id": B}]
    for echo, contacts in [({"to": ""}, []), ({"to": "", "to_user_id": ""}, two), ({}, [])]:
        value = {"metadata": META, "contacts": contacts, "message_echoes": [message(1, **{"from": BUSINESS, **echo})]}
        out = norm("smb_message_echoes", value)
        assert out.messages == []
        assert [item.path for item in out.rejected] == ["$.value.message_echoes[0].to"]


# ---- smb_app_state_sync ------------------------------------------------------------------------


def test_contacts_with_a_withheld_number_and_with_both() -> None:
    out = fixture("smb_app_state_sync_withheld")
    assert out.contacts == [
        ContactRow(PNID, "", "Pablo Morales", "Pablo", 0, 1738346006, WABA, 1738346006 * 2, A, "pablo.m", "", 0),
        ContactRow(PNID, USER, "Chris Doe", "Chris", 0, 1738346007, WABA, 1738346007 * 2, C, "", "", 0),
    ]


def contact_item(contact: dict[str, Any], action: str = "add") -> dict[str, Any]:
    return {"type": "contact", "contact": contact, "action": action, "metadata": {"timestamp": 1738346010}}


def test_a_removal_by_bsuid_keeps_its_key() -> None:
    value = {"metadata": META, "state_sync": [contact_item({"phone_number": "", "user_id": A}, "remove")]}
    [row] = norm("smb_app_state_sync", value).contacts
    assert (row.contact_wa_id, row.contact_user_id, row.deleted, row.user_key, row.merged) == ("", A, 1, "", 0)


@pytest.mark.parametrize(
    ("contact", "path"),
    [
        ({"phone_number": "", "full_name": "Nobody"}, ".contact.phone_number"),
        ({"phone_number": "", "user_id": ""}, ".contact.phone_number"),
        ({"user_id": None}, ".contact.phone_number"),
        ({"phone_number": "", "user_id": 1502576394655843}, ".contact.user_id"),
        ({"phone_number": 16505551234, "user_id": A}, ".contact.phone_number"),
    ],
)
def test_a_contact_without_a_usable_identifier_is_set_aside(contact: dict[str, Any], path: str) -> None:
    good = contact_item({"phone_number": "", "user_id": B, "username": "ana_b"})
    out = norm("smb_app_state_sync", {"metadata": META, "state_sync": [contact_item(contact), good]})
    assert [(r.contact_wa_id, r.contact_user_id, r.username) for r in out.contacts] == [("", B, "ana_b")]
    assert [item.path for item in out.rejected] == [f"$.value.state_sync[0]{path}"]


# ---- messages (Cloud API) ----------------------------------------------------------------------


def test_cloud_api_message_from_a_withheld_user() -> None:
    out = fixture("messages_withheld")
    [row] = out.messages
    assert (row.source, row.direction, row.text, *who(row)) == (
        "cloud_api",
        "inbound",
        "Is it in stock?",
        "",
        A,
        "pablo.m",
    )
    assert out.contacts == []  # contacts come from smb_app_state_sync only


def test_cloud_api_status_to_a_withheld_user() -> None:
    [status] = fixture("messages_status_withheld").statuses
    assert status == StatusRow(PNID, "wamid.S1", "", "read", 1739231300, None, status.raw, A)


@pytest.mark.parametrize(
    ("fields", "contacts", "expected"),
    [
        ({"from": USER, "from_user_id": C}, [{"wa_id": USER, "user_id": C}], (USER, C, "")),
        ({"from": USER}, [{"wa_id": USER, "user_id": C, "profile": {"username": "chris"}}], (USER, C, "chris")),
        ({"from": "", "from_user_id": A}, [], ("", A, "")),
        ({"from": ""}, [{"wa_id": "", "user_id": A, "profile": {"username": "pablo.m"}}], ("", A, "pablo.m")),
    ],
)
def test_cloud_api_identifiers(fields: dict[str, Any], contacts: list[dict[str, Any]], expected: Who) -> None:
    [row] = norm("messages", {"metadata": META, "contacts": contacts, "messages": [message(1, **fields)]}).messages
    assert (row.direction, *who(row)) == ("inbound", *expected)


def test_cloud_api_items_with_unreadable_bsuids_are_set_aside() -> None:
    value = {
        "metadata": META,
        "messages": [message(1, **{"from": "", "from_user_id": 7}), message(2, **{"from": ""})],
        "statuses": [
            {"id": "wamid.S1", "status": "sent", "timestamp": 1, "recipient_id": "", "recipient_user_id": ["A"]},
            {"id": "wamid.S2", "status": "sent", "timestamp": 2, "recipient_id": USER},
        ],
    }
    out = norm("messages", value)
    assert out.messages == []
    assert [(s.message_id, s.recipient_id, s.recipient_user_id) for s in out.statuses] == [("wamid.S2", USER, "")]
    assert [item.path for item in out.rejected] == [
        "$.value.messages[0].from_user_id",
        "$.value.messages[1].from",
        "$.value.statuses[0].recipient_user_id",
    ]


# ---- properties --------------------------------------------------------------------------------

bsuids = st.builds(
    lambda cc, ent, tail: f"{cc}.{'ENT.' if ent else ''}{tail}",
    st.sampled_from(("US", "BR", "IN", "MX", "DE")),
    st.booleans(),
    st.text("ABCDEFabcdef0123456789", min_size=1, max_size=24),
)
user_phones = st.integers(10**10, 10**12 - 1).map(str)  # never the business's 15550783881
usernames = st.sampled_from(("", "pablo.m", "ana_b", "chris"))


@st.composite
def users(draw: Any, max_size: int = 4) -> list[tuple[str, str, str]]:
    """Distinct users (phone, bsuid, username), each with a number or a BSUID or both; '' = none."""
    count = draw(st.integers(1, max_size))
    phones = draw(st.lists(user_phones, min_size=count, max_size=count, unique=True))
    ids = draw(st.lists(bsuids, min_size=count, max_size=count, unique=True))
    out = []
    for phone, user_id in zip(phones, ids, strict=True):
        shown = draw(st.sampled_from(("phone", "bsuid", "both")))
        out.append((phone if shown != "bsuid" else "", user_id if shown != "phone" else "", draw(usernames)))
    return out


@st.composite
def thread_of(draw: Any, user: tuple[str, str, str], first: int) -> tuple[dict[str, Any], list[tuple[str, Who]]]:
    """A history thread of `user` and, per message, (direction, the identifiers its row must carry)."""
    phone, user_id, username = user
    in_context = not phone or draw(st.booleans())  # a withheld user's thread always has its context
    thread: dict[str, Any] = {"id": phone if draw(st.booleans()) or not in_context else "", "messages": []}
    if in_context:
        thread["context"] = {"wa_id": phone, "user_id": user_id, "country_code": user_id[:2]}
        if username:
            thread["context"]["username"] = username
    expected: list[tuple[str, Who]] = []
    for n in range(draw(st.integers(0, 5))):
        fields: dict[str, Any]
        if draw(st.booleans()):  # the business's
            direction = "outbound"
            fields = {"from": BUSINESS} if draw(st.integers(0, 5)) else {"history_context": {"from_me": True}}
            if draw(st.booleans()):
                fields["to"] = phone
            named = user_id and draw(st.booleans())
            if named:
                fields["to_user_id"] = user_id
        else:
            direction = "inbound"
            fields = {"from": phone} if phone or draw(st.booleans()) else {}
            named = user_id and (not phone or draw(st.booleans()))
            if named:
                fields["from_user_id"] = user_id
        thread["messages"].append(message(first + n, **fields))
        given_id = user_id if in_context or named else ""
        expected.append((direction, (phone, given_id, username if in_context else "")))
    return thread, expected


@PROPERTY
@given(users(), st.data())
def test_every_history_row_is_its_own_threads_user_in_the_right_direction(
    people: list[tuple[str, str, str]], data: st.DataObject
) -> None:
    threads, expected = [], []
    for user in people:
        thread, rows = data.draw(thread_of(user, first=len(expected)))
        threads.append(thread)
        expected += rows
    out = norm("history", chunk(*threads))
    assert out.rejected == []
    assert [(r.direction, who(r)) for r in chunk_rows(out)] == expected


@PROPERTY
@given(users(), st.data())
def test_every_followup_echo_and_cloud_row_is_its_own_users(
    people: list[tuple[str, str, str]], data: st.DataObject
) -> None:
    contacts = [
        {"profile": {"name": "N", **({"username": u} if u else {})}, "wa_id": p, "user_id": i} for p, i, u in people
    ]
    contacts = data.draw(st.permutations(contacts))
    picks = data.draw(st.lists(st.sampled_from(people), min_size=1, max_size=8))
    inbound, outbound, expected = [], [], []
    for n, (phone, user_id, username) in enumerate(picks):
        # Each message names its user by at least one identifier; the contacts entry gives the rest.
        by_phone = bool(phone) and (not user_id or data.draw(st.booleans()))
        by_id = bool(user_id) and (not by_phone or data.draw(st.booleans()))
        sent = data.draw(st.booleans())
        if sent:
            fields = {"from": BUSINESS, "to": phone if by_phone else "", **({"to_user_id": user_id} if by_id else {})}
        else:
            fields = {"from": phone if by_phone else "", **({"from_user_id": user_id} if by_id else {})}
        (outbound if sent else inbound).append(message(n, **fields))
        expected.append((n, "outbound" if sent else "inbound", (phone, user_id, username)))

    def rows_of(out: Normalized, rows: list[MessageRow]) -> list[tuple[int, str, Who]]:
        assert out.rejected == []
        return sorted((int(r.message_id.split(".")[1]), r.direction, who(r)) for r in rows)

    followups = norm("history", {"metadata": META, "contacts": contacts, "messages": inbound + outbound})
    assert rows_of(followups, followups.media_followups) == expected
    echoes = norm("smb_message_echoes", {"metadata": META, "contacts": contacts, "message_echoes": outbound})
    cloud = norm("messages", {"metadata": META, "contacts": contacts, "messages": inbound})
    assert rows_of(echoes, echoes.messages) + rows_of(cloud, cloud.messages) == [
        e for e in expected if e[1] == "outbound"
    ] + [e for e in expected if e[1] == "inbound"]

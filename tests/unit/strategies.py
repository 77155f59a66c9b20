"""Hypothesis strategies for valid Coexistence webhooks, reusable by every test of the project.

Each `*_values()` strategy builds one change `value` of its field (plain dicts, as orjson decodes
them); `changes()` draws `(field, value)` of any kind; `envelopes()` a whole delivery dict and
`envelope_bodies()` its bytes. Message ids are unique within a value (`wamid.<n>`), timestamps
arrive as digit strings or integers, and unknown extra fields appear now and then, as they do in
real deliveries. The business number is sometimes displayed formatted (`+1 555...`) while
messages use digits only.

    from tests.unit.strategies import envelope_bodies
    @given(envelope_bodies())
    def test_x(body: bytes) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import strategies as st

Json = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
# Types a WhatsApp user can send (messages webhook, history); echoes add `template`.
USER_TYPES = (
    "text",
    *MEDIA_TYPES,
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
)
ECHO_TYPES = ("text", *MEDIA_TYPES, "location", "contacts", "interactive", "reaction", "template")
HISTORY_STATUSES = ("DELIVERED", "ERROR", "PENDING", "PLAYED", "READ", "SENT")
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed")

phone_numbers = st.integers(10**9, 10**14 - 1).map(str)
entity_ids = st.integers(10**14, 10**16 - 1).map(str)  # WABA ids, phone number ids, media ids
unix_seconds = st.integers(1_600_000_000, 1_900_000_000)
timestamps = unix_seconds.flatmap(lambda t: st.sampled_from((t, str(t))))
short_text = st.text(max_size=40)
extra_fields = st.dictionaries(
    st.sampled_from(("x_future", "x_flag", "x_nested")),
    st.one_of(st.integers(-(2**63), 2**63 - 1), short_text, st.booleans(), st.fixed_dictionaries({"k": short_text})),
    max_size=2,
)


def _error(code: st.SearchStrategy[int]) -> st.SearchStrategy[Json]:
    return st.fixed_dictionaries(
        {"code": code, "title": short_text, "message": short_text},
        optional={"error_data": st.fixed_dictionaries({"details": short_text}), "href": short_text},
    )


platform_errors = _error(st.integers(100, 3_000_000))


def _media(kind: str) -> st.SearchStrategy[Json]:
    optional: dict[str, st.SearchStrategy[Any]] = {}
    if kind in ("image", "video", "document"):
        optional["caption"] = short_text
    if kind == "document":
        optional["filename"] = short_text
    return st.fixed_dictionaries(
        {
            "id": entity_ids,
            "mime_type": st.sampled_from(("image/jpeg", "video/mp4", "audio/ogg", "application/pdf")),
            "sha256": st.text("0123456789abcdef", min_size=8, max_size=16),
        },
        optional=optional,
    )


def content(kind: str) -> st.SearchStrategy[Any]:
    """The object a message carries under the key named by its `type`."""
    if kind in MEDIA_TYPES:
        return _media(kind)
    simple: dict[str, st.SearchStrategy[Any]] = {
        "text": st.fixed_dictionaries({"body": short_text}, optional={"preview_url": st.booleans()}),
        "location": st.fixed_dictionaries(
            {"latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180)},
            optional={"name": short_text, "address": short_text},
        ),
        "contacts": st.lists(
            st.fixed_dictionaries(
                {"name": st.fixed_dictionaries({"formatted_name": short_text})},
                optional={"phones": st.lists(st.fixed_dictionaries({"phone": phone_numbers}), max_size=2)},
            ),
            min_size=1,
            max_size=2,
        ),
        "interactive": st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.just("button_reply"),
                    "button_reply": st.fixed_dictionaries({"id": short_text, "title": short_text}),
                }
            ),
            st.fixed_dictionaries(
                {
                    "type": st.just("list_reply"),
                    "list_reply": st.fixed_dictionaries(
                        {"id": short_text, "title": short_text, "description": short_text}
                    ),
                }
            ),
        ),
        "button": st.fixed_dictionaries({"text": short_text, "payload": short_text}),
        "reaction": st.fixed_dictionaries(
            {"message_id": st.integers(0, 10**6).map(lambda n: f"wamid.R{n}")},
            optional={"emoji": st.sampled_from(("👍", "❤️", "😂"))},
        ),
        "order": st.fixed_dictionaries(
            {"catalog_id": entity_ids, "product_items": st.just([])}, optional={"text": short_text}
        ),
        "system": st.fixed_dictionaries(
            {"body": short_text, "type": st.just("user_changed_number"), "new_wa_id": phone_numbers}
        ),
        "unsupported": st.fixed_dictionaries({"type": st.just("edit")}),
        "template": st.fixed_dictionaries(
            {"name": short_text, "language": st.fixed_dictionaries({"code": st.just("en_US")})}
        ),
    }
    return simple[kind]


@st.composite
def messages(
    draw: Draw,
    *,
    sender: str | None,
    to: str | None = None,
    types: tuple[str, ...] = USER_TYPES,
    history_status: bool = False,
    from_me: bool | None = None,
) -> Json:
    """One message object. `sender=None` leaves `from` out (history may rely on `from_me`)."""
    kind = draw(st.sampled_from(types))
    message: Json = {}
    if sender is not None:
        message["from"] = sender
    if to is not None:
        message["to"] = to
    message.update({"id": "wamid.?", "timestamp": draw(timestamps), "type": kind})
    if kind != "media_placeholder":
        message[kind] = draw(content(kind))
    if kind == "unsupported" or draw(st.integers(0, 9)) == 0:
        message["errors"] = draw(st.lists(_error(st.sampled_from((131051, 131060))), min_size=1, max_size=2))
    if draw(st.booleans()):
        message["context"] = draw(
            st.fixed_dictionaries(
                {"id": st.integers(0, 10**6).map(lambda n: f"wamid.C{n}")},
                optional={"from": phone_numbers, "forwarded": st.booleans()},
            )
        )
    if history_status:
        context: Json = {"status": draw(st.sampled_from(HISTORY_STATUSES))}
        if from_me is not None:
            context["from_me"] = from_me
        message["history_context"] = context
    message.update(draw(extra_fields))
    return message


@st.composite
def business(draw: Draw) -> tuple[str, Json]:
    """(the business number as messages spell it, the value's `metadata`)."""
    number = draw(phone_numbers)
    display = draw(st.sampled_from((number, f"+{number}", f"+{number[:2]} {number[2:6]}-{number[6:]}")))
    return number, {"display_phone_number": display, "phone_number_id": draw(entity_ids)}


def _numbered(value: Json) -> Json:
    """Give every message of a value a unique id, in document order."""
    counter = 0

    def renumber(messages: list[Json]) -> None:
        nonlocal counter
        for message in messages:
            message["id"] = f"wamid.M{counter}"
            counter += 1

    for item in value.get("history", []):
        for thread in item.get("threads", []):
            renumber(thread["messages"])
    for key in ("messages", "message_echoes"):
        renumber(value.get(key, []))
    return value


@st.composite
def history_message(draw: Draw, number: str, user: str) -> Json:
    outbound = draw(st.booleans())
    sender: str | None = number if outbound else user
    if draw(st.integers(0, 9)) == 0:
        sender = None  # some deliveries leave `from` out; `from_me` says who sent it
        from_me: bool | None = outbound
    else:
        from_me = draw(st.sampled_from((None, outbound)))
    types = (*USER_TYPES, "media_placeholder", "media_placeholder")
    message: Json = draw(messages(sender=sender, types=types, history_status=True, from_me=from_me))
    return message


@st.composite
def history_chunk_values(draw: Draw, *, max_threads: int = 4, max_messages: int = 6) -> Json:
    number, metadata = draw(business())
    threads = []
    for user in draw(st.lists(phone_numbers, max_size=max_threads)):
        thread_messages = draw(st.lists(history_message(number, user), max_size=max_messages))
        threads.append({"id": user, "messages": thread_messages, **draw(extra_fields)})
    chunk = {
        "metadata": {
            "phase": draw(st.integers(0, 2)),
            "chunk_order": draw(st.integers(0, 500)),
            "progress": draw(st.integers(0, 100)),
        },
        "threads": threads,
    }
    return _numbered({"messaging_product": "whatsapp", "metadata": metadata, "history": [chunk]})


@st.composite
def history_followup_values(draw: Draw) -> Json:
    number, metadata = draw(business())
    followups = []
    for user in draw(st.lists(phone_numbers, min_size=1, max_size=3)):
        if draw(st.booleans()):
            message = draw(messages(sender=number, to=user, types=MEDIA_TYPES))
        else:
            message = draw(messages(sender=user, types=MEDIA_TYPES))
        followups.append(message)
    return _numbered({"messaging_product": "whatsapp", "metadata": metadata, "messages": followups})


@st.composite
def history_declined_values(draw: Draw) -> Json:
    _, metadata = draw(business())
    errors = draw(st.lists(_error(st.just(2593109)), min_size=1, max_size=2))
    return {"messaging_product": "whatsapp", "metadata": metadata, "history": [{"errors": errors}]}


@st.composite
def state_sync_values(draw: Draw) -> Json:
    _, metadata = draw(business())
    items = []
    for user in draw(st.lists(phone_numbers, min_size=1, max_size=5)):
        action = draw(st.sampled_from(("add", "remove")))
        contact: Json = {"phone_number": user}
        if action == "add":
            contact |= {"full_name": draw(short_text), "first_name": draw(short_text)}
        items.append(
            {
                "type": "contact",
                "contact": contact,
                "action": action,
                "metadata": {"timestamp": draw(timestamps)},
                **draw(extra_fields),
            }
        )
    return {"messaging_product": "whatsapp", "metadata": metadata, "state_sync": items}


@st.composite
def echo_values(draw: Draw) -> Json:
    number, metadata = draw(business())
    echoes = [
        draw(messages(sender=number, to=user, types=ECHO_TYPES))
        for user in draw(st.lists(phone_numbers, min_size=1, max_size=3))
    ]
    return _numbered({"messaging_product": "whatsapp", "metadata": metadata, "message_echoes": echoes})


@st.composite
def account_update_values(draw: Draw) -> Json:
    event = draw(st.sampled_from(("PARTNER_REMOVED", "ACCOUNT_OFFBOARDED", "VERIFIED_ACCOUNT")))
    value: Json = {"phone_number": draw(phone_numbers), "event": event}
    if event == "PARTNER_REMOVED" and draw(st.booleans()):
        value["disconnection_info"] = {"reason": draw(short_text), "initiated_by": "BUSINESS"}
    extra: Json = draw(extra_fields)
    return value | extra


@st.composite
def messages_values(draw: Draw) -> Json:
    """The ordinary Cloud API `messages` webhook: inbound messages, statuses, or errors."""
    _, metadata = draw(business())
    value: Json = {"messaging_product": "whatsapp", "metadata": metadata}
    kind = draw(st.sampled_from(("messages", "statuses", "errors")))
    if kind == "messages":
        users = draw(st.lists(phone_numbers, min_size=1, max_size=3))
        value["contacts"] = [{"profile": {"name": draw(short_text)}, "wa_id": user} for user in users]
        value["messages"] = [draw(messages(sender=user)) for user in users]
    elif kind == "statuses":
        value["statuses"] = [
            {
                "id": f"wamid.S{n}",
                "status": draw(st.sampled_from(DELIVERY_STATUSES)),
                "timestamp": draw(timestamps),
                "recipient_id": draw(phone_numbers),
                **({"errors": draw(st.lists(platform_errors, min_size=1, max_size=2))} if draw(st.booleans()) else {}),
            }
            for n in range(draw(st.integers(1, 3)))
        ]
    else:
        value["errors"] = draw(st.lists(_error(st.sampled_from((131060, 131000))), min_size=1, max_size=2))
    return _numbered(value)


@st.composite
def unknown_values(draw: Draw) -> Json:
    _, metadata = draw(business())
    return {"metadata": metadata, "anything": draw(short_text)}


VALUE_STRATEGIES: dict[str, st.SearchStrategy[Json]] = {
    "history": st.one_of(history_chunk_values(), history_followup_values(), history_declined_values()),
    "smb_app_state_sync": state_sync_values(),
    "smb_message_echoes": echo_values(),
    "account_update": account_update_values(),
    "messages": messages_values(),
}


@st.composite
def changes(draw: Draw, *, fields: tuple[str, ...] | None = None) -> tuple[str, Json]:
    """(field, value) of one change; `fields` limits the kinds, `"future_field"` is an unknown one."""
    field = draw(st.sampled_from(fields or (*VALUE_STRATEGIES, "future_field")))
    strategy = VALUE_STRATEGIES.get(field, unknown_values())
    return field, draw(strategy)


@st.composite
def envelopes(draw: Draw, *, max_entries: int = 2, max_changes: int = 3) -> Json:
    entries = []
    for _ in range(draw(st.integers(1, max_entries))):
        entry: Json = {"id": draw(entity_ids)}
        if draw(st.booleans()):
            entry["time"] = draw(unix_seconds)
        entry["changes"] = [
            {"value": value, "field": field}
            for field, value in draw(st.lists(changes(), min_size=1, max_size=max_changes))
        ]
        entries.append(entry)
    return {"object": "whatsapp_business_account", "entry": entries}


def envelope_bodies(**kwargs: int) -> st.SearchStrategy[bytes]:
    return envelopes(**kwargs).map(orjson.dumps)

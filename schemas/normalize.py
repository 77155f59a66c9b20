"""One webhook change -> flat rows of `schemas.rows`. Pure: no I/O, no clock.

The hot path reads the orjson-decoded dicts directly (no pydantic per message), so a history
chunk of thousands of messages costs one pass with a few dict lookups and one `orjson.dumps`
(the `raw` column) per message.

Malformed input: an item of a list that cannot be read (a message, a status, a contact change)
is set aside as one `Rejected(path, expected, raw)`, the path naming its first bad field (e.g.
`$.value.history[0].threads[2].messages[5].timestamp`), and the rest of the change goes on: one bad
message does not cost the thousands of good ones in its chunk. A change whose frame cannot be read
(its metadata, a chunk's phase, a thread's id or `context`, a list that is not a list) is refused
whole with one `ChangeError(path, expected)`. Only what is stored as a key, a time or a status is
checked; content fields (a caption or a username that is not a string, say) are read leniently as ''.

Users who hide their number (reference/usernames-and-bsuids.md): every phone-number field may be
'' and the user's BSUID comes beside it (`user_id`, `from_user_id`, `to_user_id`,
`recipient_user_id`), stored exactly as received. A value's `contacts[]` (`wa_id`, `user_id`,
`profile.username`) names the users of its messages: a message takes the entry of its user (same
BSUID or same number, none contradicting), or the only entry when it names no other user.

Per message (all sources):

| column          | value                                                                        |
| --------------- | ---------------------------------------------------------------------------- |
| direction       | history, follow-up: `outbound` when `from` is the business number (as shown, |
|                 | digits, `+digits`); else `inbound` when the message has a `from_user_id`     |
|                 | (only the user's carry it); else, in a thread, `outbound` when `from` is not |
|                 | the thread's user (digits compared; any number when the user's is withheld); |
|                 | `from` given as '' is the user's (the business's number is never withheld);  |
|                 | without `from`: `outbound` when `to` or `to_user_id` is there (only the      |
|                 | business's messages carry them), else `history_context.from_me`; otherwise   |
|                 | `inbound`; echo: always `outbound`; messages webhook: `inbound`. A follow-up |
|                 | joined to its placeholder takes the placeholder's direction and contact      |
| contact_wa_id   | history: the thread's `id`, else its `context.wa_id`; echo: `to`; messages     |
|                 | webhook: `from`; follow-up: `from` when inbound, `to` when outbound; else the  |
|                 | number of the message's `contacts[]` entry; else ''                          |
| contact_user_id | history: the thread's `context.user_id`, else the message's `from_user_id` /  |
|                 | `to_user_id`; others: the user's (`from_user_id` inbound, `to_user_id`       |
|                 | outbound), else its `contacts[]` entry's `user_id`; else ''                  |
| contact_username| history: the thread's `context.username`; others: its `contacts[]` entry's    |
|                 | `profile.username`; else ''                                                  |
| sent_at         | `timestamp` (digit string or integer), unix seconds                          |
| status          | history chunks: `history_context.status` lower-case; otherwise ''            |
| context_id      | `context.id`; for a reaction without context, `reaction.message_id`          |
| error_code      | `errors[0].code` of the message, else NULL                                   |
| raw             | the message object re-serialized by orjson (compact JSON); a message nested  |
|                 | deeper than orjson writes (schemas/jsontext.py) is an unreadable item        |
| version         | `message_version(complete, status)`; complete = type != media_placeholder    |

`text`, `media_id`, `media_mime_type` by `type` (from the object named by `type`):

| type                                  | text                                  | media_id / media_mime_type |
| ------------------------------------- | ------------------------------------- | -------------------------- |
| text                                  | `text.body`                           | ''                         |
| image, video, document                | `caption`                             | `id` / `mime_type`         |
| audio, sticker                        | ''                                    | `id` / `mime_type`         |
| button                                | `button.text`                         | ''                         |
| interactive                           | the reply's `title` (button_reply,     | ''                         |
|                                       | list_reply), `nfm_reply.body`, or an  |                            |
|                                       | outgoing interactive's `body.text`    |                            |
| reaction                              | `reaction.emoji` ('' = removed)       | ''                         |
| order                                 | `order.text` (the buyer's note)       | ''                         |
| system                                | `system.body`                         | ''                         |
| media_placeholder                     | '' (content follows in a follow-up)   | ''                         |
| location, contacts, template,         | ''; the object stays in `raw`         | ''                         |
| unsupported, anything else            | (any other type: its `body`/`caption` |                            |
|                                       | string if it has one)                 |                            |

An echo or a messages-webhook message that names no user (no number, no BSUID, no `contacts[]`
entry giving one) is an unreadable item; so is a state-sync contact without `phone_number` and
`user_id`, and a history thread without `id`, `context.wa_id` and `context.user_id` refuses its change.

Errors: `history[].errors[]` (e.g. 2593109, history declined) go to `history_errors`; every other
error the platform reports (`value.errors[]`, a message's or a status's `errors[]`) goes to
`errors`, with the message or status id when it belongs to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, NamedTuple

import orjson

from schemas import jsontext
from schemas.errors import ChangeError
from schemas.routing import WrappedChange
from schemas.rows import (
    STATUS_RANK,
    AccountEventRow,
    ContactRow,
    MessageRow,
    StatusRow,
    WebhookErrorRow,
    change_key,
    contact_version,
)

MAX_UINT32 = 2**32 - 1
# The platform's history phases: 0 (day 0-1), 1 (1-90), 2 (90-180). Another would count as a phase
# of the business's sync (phases_complete) that no import has.
MAX_PHASE = 2
_MEDIA_TYPES = frozenset(("image", "video", "audio", "document", "sticker"))
_CAPTIONED = frozenset(("image", "video", "document"))
PLACEHOLDER = "media_placeholder"
_COMPLETE = 1 << 8  # message_version's complete bit, inlined on the hot path

SOURCE_HISTORY = "history"
SOURCE_ECHO = "echo"
SOURCE_CLOUD_API = "cloud_api"
_FOLLOWUP = "followup"  # source 'history', but direction/contact/status as described above


class _User(NamedTuple):
    """A WhatsApp user as a change names them: '' for what it does not give (a withheld number)."""

    phone: str
    user_id: str  # BSUID, as received
    username: str


_NOBODY = _User("", "", "")


@dataclass(slots=True)
class HistoryChunk:
    phase: int
    chunk_order: int
    progress: int
    messages: list[MessageRow]  # source 'history'; placeholders: type media_placeholder, incomplete


@dataclass(frozen=True, slots=True)
class Rejected:
    """One unreadable item of a change, kept for `dead_letters` while the rest is processed."""

    path: str  # its first bad field, e.g. $.value.history[0].threads[2].messages[5].timestamp
    expected: str
    raw: str  # the item as received (JSON)

    @property
    def error(self) -> str:
        """As `dead_letters.error` holds a refused change's: `ChangeError: <path>: <expected>`."""
        return f"{ChangeError.__name__}: {self.path}: {self.expected}"


@dataclass(slots=True)
class Normalized:
    field: str
    phone_number_id: str  # '' when the value has none (account_update)
    waba_id: str
    business_number: str  # value.metadata.display_phone_number or ''
    messages: list[MessageRow] = dc_field(default_factory=list)  # echo and cloud_api rows
    history_chunks: list[HistoryChunk] = dc_field(default_factory=list)
    # history, value.messages[] and value.message_echoes[]
    media_followups: list[MessageRow] = dc_field(default_factory=list)
    history_errors: list[WebhookErrorRow] = dc_field(default_factory=list)  # history[].errors[]
    contacts: list[ContactRow] = dc_field(default_factory=list)
    statuses: list[StatusRow] = dc_field(default_factory=list)
    account_events: list[AccountEventRow] = dc_field(default_factory=list)
    errors: list[WebhookErrorRow] = dc_field(default_factory=list)  # every other reported error
    rejected: list[Rejected] = dc_field(default_factory=list)  # unreadable items, left out of the rows

    def reject(self, at: str, bad: _Bad, item: Any) -> None:
        # jsontext.dumps: an item may be rejected for nesting deeper than orjson.dumps goes.
        self.rejected.append(Rejected(f"$.value{at}{bad.rel}", bad.expected, jsontext.dumps(item).decode()))


class _Bad(Exception):
    """A bad field relative to the object being read; the loop that knows the indices adds the prefix."""

    def __init__(self, rel: str, expected: str) -> None:
        super().__init__(rel, expected)
        self.rel = rel
        self.expected = expected


def normalize_change(change: WrappedChange) -> Normalized:
    """Normalize a change as read back from Kafka (`schemas.routing.decode_record`)."""
    return normalize_value(
        change.field,
        change.value,
        waba_id=change.waba_id,
        entry_time=change.entry_time,
        received_at=change.received_at,
    )


def normalize_value(
    field: str, value: dict[str, Any], *, waba_id: str, entry_time: int | None, received_at: float
) -> Normalized:
    """Normalize one change's `value`. Unknown fields give an empty result; bad input raises ChangeError."""
    if type(value) is not dict:
        raise ChangeError("$.value", "expected an object")
    reader = _READERS.get(field)
    if reader is None:
        pnid, business = _loose_metadata(value)
        return Normalized(field, pnid, waba_id, business)
    # An entry time no DateTime holds (a signed delivery may say 2**64 - 1) would fail every insert
    # of its batch: the arrival dates the change then, as when the time is absent.
    occurred_at = entry_time if entry_time is not None and 0 <= entry_time <= MAX_UINT32 else int(received_at)
    try:
        return reader(field, value, waba_id, occurred_at)
    except _Bad as bad:
        raise ChangeError("$.value" + bad.rel, bad.expected) from None


# ---- per field ---------------------------------------------------------------------------------


def _history(field: str, value: dict[str, Any], waba_id: str, occurred_at: int) -> Normalized:
    pnid, business = _metadata(value)
    out = Normalized(field, pnid, waba_id, business)
    biz = _business_forms(business)
    items = _list(value, "history")
    for h, item in enumerate(items):
        at = f".history[{h}]"
        if type(item) is not dict:
            raise _Bad(at, "expected an object")
        errors = _list(item, "errors", at)
        for k, error in enumerate(errors):
            out.history_errors.append(_error_row(error, f"{at}.errors[{k}]", pnid, waba_id, field, "", occurred_at))
        meta = item.get("metadata")
        if meta is None:
            if not errors:
                raise _Bad(at, "expected a chunk ({metadata, threads}) or {errors}")
            if item.get("threads"):
                raise _Bad(f"{at}.metadata", "missing (threads without the chunk's metadata)")
            continue
        if type(meta) is not dict:
            raise _Bad(f"{at}.metadata", "expected an object")
        phase = _int_in(meta.get("phase"), MAX_PHASE, f"{at}.metadata.phase")
        chunk_order = _int_in(meta.get("chunk_order"), MAX_UINT32, f"{at}.metadata.chunk_order")
        progress = _int_in(meta.get("progress"), 100, f"{at}.metadata.progress")
        rows: list[MessageRow] = []
        for t, thread in enumerate(_list(item, "threads", at)):
            tat = f"{at}.threads[{t}]"
            if type(thread) is not dict:
                raise _Bad(tat, "expected an object")
            user = _thread_user(thread, tat)
            messages = _list(thread, "messages", tat)
            for i, message in enumerate(messages):
                try:
                    row = _message_row(message, SOURCE_HISTORY, pnid, waba_id, biz, user, (), phase, chunk_order)
                except _Bad as bad:  # try is free in 3.11 until it raises
                    out.reject(f"{tat}.messages[{i}]", bad, message)
                    continue
                rows.append(row)
                if row.error_code is not None:
                    out.errors.extend(_message_errors(message, row, field))
        out.history_chunks.append(HistoryChunk(phase, chunk_order, progress, rows))
    contacts = _contacts(value, out)
    out.media_followups = _messages(value, "messages", _FOLLOWUP, pnid, waba_id, biz, contacts, out)
    out.media_followups += _messages(value, "message_echoes", _FOLLOWUP, pnid, waba_id, biz, contacts, out)
    return out


def _thread_user(thread: dict[str, Any], at: str) -> _User:
    """The user of a history thread: its `id` (their number) and `context` (number, BSUID, username)."""
    phone = thread.get("id")
    if type(phone) is not str:
        raise _Bad(f"{at}.id", "expected the WhatsApp user's number (string)")
    context = thread.get("context")
    if context is None:
        user = _User(phone, "", "")
    elif type(context) is not dict:
        raise _Bad(f"{at}.context", "expected an object")
    else:
        wa_id = _phone(context.get("wa_id"), f"{at}.context.wa_id")
        user_id = _user_id(context.get("user_id"), f"{at}.context.user_id")
        user = _User(phone or wa_id, user_id, _str(context.get("username")))
    if not user.phone and not user.user_id:
        raise _Bad(f"{at}.id", "expected the WhatsApp user's number, or a BSUID in `context.user_id`")
    return user


def _state_sync(field: str, value: dict[str, Any], waba_id: str, occurred_at: int) -> Normalized:
    pnid, business = _metadata(value)
    out = Normalized(field, pnid, waba_id, business)
    for k, item in enumerate(_list(value, "state_sync")):
        try:
            row = _contact_change(item, pnid, waba_id)
        except _Bad as bad:
            out.reject(f".state_sync[{k}]", bad, item)
            continue
        if row is not None:
            out.contacts.append(row)
    return out


def _contact_change(item: Any, pnid: str, waba_id: str) -> ContactRow | None:
    """One `state_sync` item -> its contact row; None for an item of another type."""
    if type(item) is not dict:
        raise _Bad("", "expected an object")
    kind = item.get("type")
    if type(kind) is not str:
        raise _Bad(".type", "expected a string (e.g. 'contact')")
    if kind != "contact":
        return None  # another kind of state-sync item: no contact row
    contact = item.get("contact")
    if type(contact) is not dict:
        raise _Bad(".contact", "expected an object")
    wa_id = _phone(contact.get("phone_number"), ".contact.phone_number")
    user_id = _user_id(contact.get("user_id"), ".contact.user_id")
    if not wa_id and not user_id:
        raise _Bad(".contact.phone_number", "expected the contact's number, or a BSUID in `user_id`")
    action = item.get("action")
    if action not in ("add", "remove"):
        raise _Bad(".action", "expected 'add' or 'remove'")
    meta = item.get("metadata")
    if type(meta) is not dict:
        raise _Bad(".metadata", "expected an object with `timestamp`")
    changed_at = _timestamp(meta.get("timestamp"), ".metadata.timestamp")
    deleted = action == "remove"
    # A removal is a tombstone: the names go, the key stays so the newest change wins.
    return ContactRow(
        phone_number_id=pnid,
        contact_wa_id=wa_id,
        full_name="" if deleted else _str(contact.get("full_name")),
        first_name="" if deleted else _str(contact.get("first_name")),
        deleted=int(deleted),
        changed_at=changed_at,
        waba_id=waba_id,
        version=contact_version(changed_at, deleted),
        contact_user_id=user_id,
        username=_str(contact.get("username")),
    )


def _echoes(field: str, value: dict[str, Any], waba_id: str, occurred_at: int) -> Normalized:
    pnid, business = _metadata(value)
    out = Normalized(field, pnid, waba_id, business)
    out.messages = _messages(value, "message_echoes", SOURCE_ECHO, pnid, waba_id, (), _contacts(value, out), out)
    return out


def _account_update(field: str, value: dict[str, Any], waba_id: str, occurred_at: int) -> Normalized:
    pnid, business = _loose_metadata(value)
    out = Normalized(field, pnid, waba_id, business)
    event = value.get("event")
    if type(event) is not str or not event:
        raise _Bad(".event", "expected the event name (non-empty string)")
    phone = value.get("phone_number") or ""
    if type(phone) is not str:
        raise _Bad(".phone_number", "expected a string")
    info = value.get("disconnection_info")
    raw = _dumps(value)
    out.account_events.append(
        AccountEventRow(
            waba_id=waba_id,
            phone_number=phone,
            event=event,
            event_at=occurred_at,
            disconnection_info="" if info is None else _dumps(info),
            raw=raw,
            change_key=change_key(raw),
        )
    )
    return out


def _cloud_api(field: str, value: dict[str, Any], waba_id: str, occurred_at: int) -> Normalized:
    pnid, business = _metadata(value)
    out = Normalized(field, pnid, waba_id, business)
    out.messages = _messages(value, "messages", SOURCE_CLOUD_API, pnid, waba_id, (), _contacts(value, out), out)
    for k, status in enumerate(_list(value, "statuses")):
        try:
            row, errors = _status(status, pnid, waba_id, field)
        except _Bad as bad:
            out.reject(f".statuses[{k}]", bad, status)
            continue
        out.statuses.append(row)
        out.errors.extend(errors)
    for k, error in enumerate(_list(value, "errors")):
        out.errors.append(_error_row(error, f".errors[{k}]", pnid, waba_id, field, "", occurred_at))
    return out


def _status(status: Any, pnid: str, waba_id: str, field: str) -> tuple[StatusRow, list[WebhookErrorRow]]:
    """One `statuses` item -> its status row and the errors it reports (dated by the status: a
    redelivery has the same time, whenever it arrives)."""
    if type(status) is not dict:
        raise _Bad("", "expected an object")
    message_id = status.get("id")
    if type(message_id) is not str or not message_id:
        raise _Bad(".id", "expected the message id (non-empty string)")
    state = status.get("status")
    if type(state) is not str or not state:
        raise _Bad(".status", "expected a status (non-empty string)")
    status_at = _timestamp(status.get("timestamp"), ".timestamp")
    recipient = status.get("recipient_id", "")
    if type(recipient) is not str:
        raise _Bad(".recipient_id", "expected a string")
    recipient_user_id = _user_id(status.get("recipient_user_id"), ".recipient_user_id")
    errors = [
        _error_row(error, f".errors[{e}]", pnid, waba_id, field, message_id, status_at)
        for e, error in enumerate(_list(status, "errors"))
    ]
    code = errors[0].code if errors else None
    row = StatusRow(pnid, message_id, recipient, state.lower(), status_at, code, _dumps(status), recipient_user_id)
    return row, errors


_READERS = {
    "history": _history,
    "smb_app_state_sync": _state_sync,
    "smb_message_echoes": _echoes,
    "account_update": _account_update,
    "messages": _cloud_api,
}

# ---- messages ----------------------------------------------------------------------------------


def _messages(
    value: dict[str, Any],
    key: str,
    source: str,
    pnid: str,
    waba_id: str,
    biz: frozenset[str] | tuple[()],
    contacts: tuple[_User, ...],
    out: Normalized,
) -> list[MessageRow]:
    rows: list[MessageRow] = []
    for i, message in enumerate(_list(value, key)):
        try:
            row = _message_row(message, source, pnid, waba_id, biz, None, contacts, None, None)
        except _Bad as bad:
            out.reject(f".{key}[{i}]", bad, message)
            continue
        rows.append(row)
        if row.error_code is not None:
            out.errors.extend(_message_errors(message, row, out.field))
    return rows


def _message_row(
    m: Any,
    source: str,
    pnid: str,
    waba_id: str,
    biz: frozenset[str] | tuple[()],
    thread: _User | None,
    contacts: tuple[_User, ...],
    phase: int | None,
    chunk_order: int | None,
) -> MessageRow:
    """One message object -> MessageRow. `thread`: a history thread's user (None elsewhere);
    `contacts`: the value's `contacts[]` entries."""
    if type(m) is not dict:
        raise _Bad("", "expected a message object")
    get = m.get
    message_id = get("id")
    if type(message_id) is not str or not message_id:
        raise _Bad(".id", "expected the message id (non-empty string)")
    sent_at = _timestamp(get("timestamp"), ".timestamp")
    mtype = get("type")
    if type(mtype) is not str or not mtype:
        raise _Bad(".type", "expected the message type (non-empty string)")
    sender = get("from")
    if sender is not None and type(sender) is not str:
        raise _Bad(".from", "expected a phone number (string)")
    to = get("to")
    if to is not None and type(to) is not str:
        raise _Bad(".to", "expected a phone number (string)")
    sender_id = _user_id(get("from_user_id"), ".from_user_id")
    to_id = _user_id(get("to_user_id"), ".to_user_id")

    status = ""
    if source in (SOURCE_HISTORY, _FOLLOWUP):
        history_context = get("history_context")
        if history_context is not None and type(history_context) is not dict:
            raise _Bad(".history_context", "expected an object")
        outbound = _sent_by_business(sender, sender_id, to, to_id, thread, biz, history_context)
        if thread is not None:
            user = thread
            if not thread.user_id and (sender_id or to_id):  # the thread gave no BSUID, the message does
                user = _User(thread.phone, sender_id or to_id, thread.username)
            if history_context is not None:
                raw_status = history_context.get("status")
                if raw_status is not None:
                    if type(raw_status) is not str:
                        raise _Bad(".history_context.status", "expected a string (e.g. 'READ')")
                    status = raw_status.lower()
        elif outbound:
            user = _named(contacts, to or "", to_id)
        else:
            user = _named(contacts, sender or "", sender_id)
    elif source == SOURCE_ECHO:
        outbound, user = True, _named(contacts, to or "", to_id)
        if not user.phone and not user.user_id:
            raise _Bad(".to", "expected the WhatsApp user's number (non-empty string)")
    else:
        outbound, user = False, _named(contacts, sender or "", sender_id)
        if not user.phone and not user.user_id:
            raise _Bad(".from", "expected the WhatsApp user's number (non-empty string)")

    text, media_id, mime = _content(mtype, get(mtype))

    context_id = ""
    context = get("context")
    if type(context) is dict:
        replied = context.get("id")
        if type(replied) is str:
            context_id = replied
    if not context_id and mtype == "reaction":
        reaction = get("reaction")
        if type(reaction) is dict:
            context_id = _str(reaction.get("message_id"))

    error_code: int | None = None
    errors = get("errors")
    if errors is not None:
        if type(errors) is not list:
            raise _Bad(".errors", "expected an array")
        for e, error in enumerate(errors):
            if type(error) is not dict:
                raise _Bad(f".errors[{e}]", "expected an error object")
            code = _int_in(error.get("code"), MAX_UINT32, f".errors[{e}].code")
            if e == 0:
                error_code = code

    try:
        raw = orjson.dumps(m)
    except orjson.JSONEncodeError as exc:
        raise _Bad("", _too_deep(exc)) from None
    version = STATUS_RANK.get(status, 0) if mtype == PLACEHOLDER else _COMPLETE | STATUS_RANK.get(status, 0)
    return MessageRow(
        pnid,
        waba_id,
        message_id,
        user.phone,
        "outbound" if outbound else "inbound",
        SOURCE_HISTORY if source == _FOLLOWUP else source,
        mtype,
        text,
        media_id,
        mime,
        status,
        sent_at,
        phase,
        chunk_order,
        raw.decode(),
        context_id,
        error_code,
        version,
        user.user_id,
        user.username,
    )


def _content(mtype: str, obj: Any) -> tuple[str, str, str]:
    """(text, media_id, media_mime_type) of a message, by its type (table in the module docstring)."""
    if type(obj) is not dict:
        return "", "", ""
    if mtype == "text":
        return _str(obj.get("body")), "", ""
    if mtype in _MEDIA_TYPES:
        text = _str(obj.get("caption")) if mtype in _CAPTIONED else ""
        return text, _str(obj.get("id")), _str(obj.get("mime_type"))
    if mtype == "button":
        return _str(obj.get("text")), "", ""
    if mtype == "interactive":
        reply = obj.get(obj.get("type")) if type(obj.get("type")) is str else None
        if type(reply) is dict:
            return _str(reply.get("title") or reply.get("body")), "", ""
        body = obj.get("body")
        return (_str(body.get("text")) if type(body) is dict else ""), "", ""
    if mtype == "reaction":
        return _str(obj.get("emoji")), "", ""
    if mtype == "order":
        return _str(obj.get("text")), "", ""
    if mtype in ("location", "contacts", "template", "unsupported", PLACEHOLDER):
        return "", "", ""
    return _str(obj.get("body") or obj.get("caption")), "", ""


def _message_errors(message: dict[str, Any], row: MessageRow, field: str) -> list[WebhookErrorRow]:
    """Dated by the message, so a redelivery has the same time whenever it arrives."""
    return [
        _error_row(error, "", row.phone_number_id, row.waba_id, field, row.message_id, row.sent_at)
        for error in message["errors"]
    ]


# ---- small readers -----------------------------------------------------------------------------


def _error_row(
    error: Any, at: str, pnid: str, waba_id: str, field: str, message_id: str, occurred_at: int
) -> WebhookErrorRow:
    if type(error) is not dict:
        raise _Bad(at, "expected an error object")
    code = _int_in(error.get("code"), MAX_UINT32, f"{at}.code")
    data = error.get("error_data")
    details = _str(data.get("details")) if type(data) is dict else ""
    return WebhookErrorRow(
        phone_number_id=pnid,
        waba_id=waba_id,
        field=field,
        message_id=message_id,
        code=code,
        title=_str(error.get("title")),
        message=_str(error.get("message")),
        details=details,
        occurred_at=occurred_at,
        raw=_dumps(error, at),
    )


def _metadata(value: dict[str, Any]) -> tuple[str, str]:
    """(phone_number_id, display_phone_number) of a value that must name its business number."""
    meta = value.get("metadata")
    if type(meta) is not dict:
        raise _Bad(".metadata", "expected an object with `phone_number_id`")
    pnid = meta.get("phone_number_id")
    if type(pnid) is not str or not pnid:
        raise _Bad(".metadata.phone_number_id", "expected the business phone number ID (non-empty string)")
    business = meta.get("display_phone_number", "")
    if type(business) is not str:
        raise _Bad(".metadata.display_phone_number", "expected a string")
    return pnid, business


def _loose_metadata(value: dict[str, Any]) -> tuple[str, str]:
    meta = value.get("metadata")
    if type(meta) is not dict:
        return "", ""
    return _str(meta.get("phone_number_id")), _str(meta.get("display_phone_number"))


def _sent_by_business(
    sender: str | None,
    sender_id: str,
    to: str | None,
    to_id: str,
    thread: _User | None,
    biz: frozenset[str] | tuple[()],
    context: dict[str, Any] | None,
) -> bool:
    """A history message's direction. The thread is the WhatsApp user's: a `from` that is not the
    thread's number is the business's, however its number is spelled (a WhatsApp ID may differ from
    the displayed number, e.g. Mexico's 521 for 52); in a thread whose user's number is withheld,
    any number in `from` is the business's. The business's number is never withheld, so a `from`
    given as '' is the user's, and only the user's messages carry `from_user_id`. `to` and
    `to_user_id` come only with the business's own messages; `from_me` (seen in real deliveries)
    decides when none is there."""
    if sender:
        if sender in biz:
            return True
        if sender_id or thread is None:
            return False
        if sender == thread.phone:  # the common case, without building digit strings
            return False
        return not thread.phone or _digits(sender) != _digits(thread.phone)
    if sender is not None or sender_id:
        return False
    if to is not None or to_id:
        return True
    return context is not None and context.get("from_me") is True


def _contacts(value: dict[str, Any], out: Normalized) -> tuple[_User, ...]:
    """A value's `contacts[]`; an entry that cannot be read is set aside (and names no message)."""
    users: list[_User] = []
    for k, entry in enumerate(_list(value, "contacts")):
        try:
            users.append(_contact_entry(entry))
        except _Bad as bad:
            out.reject(f".contacts[{k}]", bad, entry)
    return tuple(users)


def _contact_entry(entry: Any) -> _User:
    if type(entry) is not dict:
        raise _Bad("", "expected an object")
    phone = _phone(entry.get("wa_id"), ".wa_id")
    user_id = _user_id(entry.get("user_id"), ".user_id")
    profile = entry.get("profile")
    return _User(phone, user_id, _str(profile.get("username")) if type(profile) is dict else "")


def _named(contacts: tuple[_User, ...], phone: str, user_id: str) -> _User:
    """The user a message names by `phone` and `user_id`, completed by their `contacts[]` entry: the
    one with the same BSUID or number (none contradicting), else the only one if it agrees."""
    for entry in contacts:
        if ((user_id and entry.user_id == user_id) or (phone and entry.phone == phone)) and _agrees(
            entry, phone, user_id
        ):
            return _User(phone or entry.phone, user_id or entry.user_id, entry.username)
    if len(contacts) == 1 and _agrees(contacts[0], phone, user_id):
        entry = contacts[0]
        return _User(phone or entry.phone, user_id or entry.user_id, entry.username)
    return _User(phone, user_id, "") if phone or user_id else _NOBODY


def _agrees(entry: _User, phone: str, user_id: str) -> bool:
    """Whether a contacts entry and a message's identifiers may be one user (none differs)."""
    return (not user_id or not entry.user_id or entry.user_id == user_id) and (
        not phone or not entry.phone or entry.phone == phone
    )


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def _business_forms(display: str) -> frozenset[str]:
    """The spellings of the business number a `from` may use: as displayed, digits only, `+digits`."""
    digits = _digits(display)
    return frozenset(f for f in (display, digits, f"+{digits}" if digits else "") if f)


def _list(obj: dict[str, Any], key: str, at: str = "") -> list[Any]:
    items = obj.get(key)
    if items is None:
        return []
    if type(items) is not list:
        raise _Bad(f"{at}.{key}", "expected an array")
    return items


def _phone(raw: Any, at: str) -> str:
    """A phone-number field: '' when withheld or absent."""
    if raw is None:
        return ""
    if type(raw) is not str:
        raise _Bad(at, "expected a phone number (string)")
    return raw


def _user_id(raw: Any, at: str) -> str:
    """A BSUID field, as received: '' when absent."""
    if raw is None:
        return ""
    if type(raw) is not str:
        raise _Bad(at, "expected a BSUID (string, e.g. 'US.13491208655302741918')")
    return raw


def _timestamp(raw: Any, at: str) -> int:
    """Unix seconds: a digit string (as the platform sends them) or an integer, up to 2106."""
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        raw = int(raw)
    if type(raw) is int and 0 <= raw <= MAX_UINT32:
        return raw
    raise _Bad(at, "expected a unix timestamp in seconds (integer or digit string)")


def _int_in(raw: Any, high: int, at: str) -> int:
    """A JSON integer or a digit string, 0..high."""
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        raw = int(raw)
    if type(raw) is int and 0 <= raw <= high:
        return raw
    raise _Bad(at, f"expected an integer 0..{high} (number or digit string)")


def _str(raw: Any) -> str:
    return raw if type(raw) is str else ""


def _dumps(obj: Any, at: str = "") -> str:
    """`obj` as a `raw` column holds it; one orjson cannot write (too deep) is bad at `at`."""
    try:
        return orjson.dumps(obj).decode()
    except orjson.JSONEncodeError as exc:
        raise _Bad(at, _too_deep(exc)) from None


def _too_deep(exc: orjson.JSONEncodeError) -> str:
    # The only failure orjson.dumps has for what orjson.loads gave: its nesting limit.
    return f"expected at most {jsontext.ROW_DEPTH} levels of nesting, to be stored as JSON (orjson: {exc})"

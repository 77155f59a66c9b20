"""Routing facts: which field and key each change of a webhook delivery goes to.

Cheap on purpose: one `orjson.loads` of the body and a few dict lookups, no model parse.
Each change becomes one Kafka record whose value is a small JSON wrapper,

    {"delivery_id": str, "waba_id": str, "entry_time": int | null, "received_at": float,
     "change_index": int, "change": {"field": ..., "value": ...}}

so the stream workers get the envelope facts with the change. A delivery of one change (nearly
all of them) carries the body itself instead of `change`, byte for byte as the platform signed
it: `..., "body": <the delivery>}`. `decode_record` reads both forms back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import jsontext
from schemas.errors import EnvelopeError

# The change fields the platform documents (each its own Kafka topic), and the name of anything else.
KNOWN_FIELDS: tuple[str, ...] = (
    "history",
    "smb_app_state_sync",
    "smb_message_echoes",
    "account_update",
    "messages",
)
UNKNOWN_FIELD = "unknown"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    field: str  # as sent; routed to the unknown topic when not in KNOWN_FIELDS
    key: bytes  # phone_number_id, or the WABA id where the value carries none
    value: bytes  # the wrapper described in the module docstring


@dataclass(frozen=True, slots=True)
class WrappedChange:
    delivery_id: str
    waba_id: str
    entry_time: int | None
    received_at: float
    change_index: int
    field: str
    value: dict[str, Any]


def change_key(value: Any, waba_id: str) -> str:
    """`value.metadata.phone_number_id`, else the WABA id (account_update carries no metadata)."""
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if isinstance(metadata, dict):
            pnid = metadata.get("phone_number_id")
            if isinstance(pnid, str | int) and not isinstance(pnid, bool) and str(pnid):
                return str(pnid)
    return waba_id


def split_delivery(body: bytes, delivery_id: str, received_at: float) -> list[ChangeRecord]:
    """Split a webhook body into one record per `entry[].changes[]`.

    Raises EnvelopeError (with the path of the first bad field) when the body is not a
    webhook envelope; nothing is returned then, so a refused delivery writes nothing.
    """
    try:
        doc = loads(body)
    except orjson.JSONDecodeError as exc:
        if jsontext.too_deep(exc):
            raise EnvelopeError("$", f"nested deeper than {jsontext.MAX_DEPTH} levels") from None
        raise EnvelopeError("$", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("$", "expected an object")
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise EnvelopeError("$.entry", "expected an array of entries")
    found: list[tuple[str, bytes, dict[str, Any], dict[str, Any]]] = []
    index = 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise EnvelopeError(f"$.entry[{i}]", "expected an object")
        waba_id = entry.get("id")
        if not isinstance(waba_id, str | int) or isinstance(waba_id, bool) or not str(waba_id):
            raise EnvelopeError(f"$.entry[{i}].id", "expected the WABA id (string)")
        entry_time = entry.get("time")
        if entry_time is not None and (not isinstance(entry_time, int) or isinstance(entry_time, bool)):
            entry_time = _int_or_none(entry_time)
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise EnvelopeError(f"$.entry[{i}].changes", "expected an array of changes")
        for j, change in enumerate(changes):
            if not isinstance(change, dict):
                raise EnvelopeError(f"$.entry[{i}].changes[{j}]", "expected an object")
            field = change.get("field")
            if not isinstance(field, str) or not field:
                raise EnvelopeError(f"$.entry[{i}].changes[{j}].field", "expected a string")
            if "value" not in change:
                raise EnvelopeError(f"$.entry[{i}].changes[{j}].value", "missing")
            key = change_key(change["value"], str(waba_id))
            head = {
                "delivery_id": delivery_id,
                "waba_id": str(waba_id),
                "entry_time": entry_time,
                "received_at": received_at,
                "change_index": index,
            }
            found.append((field, key.encode(), head, change))
            index += 1
    if len(found) == 1:
        # Keep the original bytes (and skip re-encoding a history chunk of several MB).
        only_field, only_key, only_head, _ = found[0]
        return [ChangeRecord(only_field, only_key, orjson.dumps(only_head)[:-1] + b',"body":' + body + b"}")]
    # jsontext.dumps: a change may nest as deep as the ingest accepts, deeper than orjson.dumps goes.
    return [ChangeRecord(f, k, jsontext.dumps({**h, "change": c})) for f, k, h, c in found]


def decode_record(value: bytes) -> WrappedChange:
    """Read back a record written by `split_delivery`. Raises EnvelopeError when malformed."""
    try:
        doc = loads(value)
    except orjson.JSONDecodeError as exc:
        doc = _deep_body_form(value) if jsontext.too_deep(exc) else None
        if doc is None:
            raise EnvelopeError("$", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("$", "expected an object")
    change = doc.get("change") if "body" not in doc else _change_in_body(doc["body"], doc.get("change_index", 0))
    if not isinstance(change, dict) or not isinstance(change.get("field"), str):
        raise EnvelopeError("$.change", "expected {field, value}")
    value_obj = change.get("value")
    if not isinstance(value_obj, dict):
        raise EnvelopeError("$.change.value", "expected an object")
    received_at = doc.get("received_at", 0.0)
    if not isinstance(received_at, int | float) or isinstance(received_at, bool):
        raise EnvelopeError("$.received_at", "expected a number (unix seconds)")
    change_index = doc.get("change_index", 0)
    if not isinstance(change_index, int) or isinstance(change_index, bool):
        raise EnvelopeError("$.change_index", "expected an integer")
    return WrappedChange(
        delivery_id=_str_or_empty(doc.get("delivery_id")),
        waba_id=_str_or_empty(doc.get("waba_id")),
        entry_time=_int_or_none(doc.get("entry_time")),
        received_at=float(received_at),
        change_index=change_index,
        field=change["field"],
        value=value_obj,
    )


_BODY_KEY = b',"body":'


def _deep_body_form(value: bytes) -> dict[str, Any] | None:
    """The record of a delivery as deep as the ingest accepts, which its wrapper makes one level
    deeper than orjson.loads reads: the head and the body read apart. None if it is not that form.

    The first `,"body":` is the key's: inside a JSON string a quote is escaped."""
    at = value.find(_BODY_KEY)
    if at < 0 or not value.endswith(b"}"):
        return None
    try:
        head = orjson.loads(value[:at] + b"}")
        body = loads(value[at + len(_BODY_KEY) : -1])
    except orjson.JSONDecodeError:
        return None
    return {**head, "body": body} if isinstance(head, dict) else None


def _change_in_body(body: Any, index: Any) -> Any:
    """The `index`-th of all `entry[].changes[]` of a delivery, or None."""
    if not isinstance(body, dict) or not isinstance(index, int) or isinstance(index, bool):
        return None
    for entry in body.get("entry") or ():
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            continue
        if index < len(changes):
            return changes[index]
        index -= len(changes)
    return None


def loads(data: bytes) -> Any:
    """orjson.loads, and for JSON it refuses only for its text: a lone surrogate escape (half of an
    emoji cut in two, `"\\ud83d"`) or bytes that are not UTF-8 (RFC 8259 leaves both to the reader).
    Those become U+FFFD, as the platform's own apps show them, instead of refusing the delivery."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        text = _repaired(data)
        if text is None:
            raise
        return orjson.loads(text)


# A \uD800-\uDFFF escape, with the low half that may follow a high one, after a run of backslashes:
# an escape when the run is odd (an even run is escaped backslashes, then the letter u).
_SURROGATE = re.compile(r"(\\+)u(d[89ab][0-9a-f]{2})(\\ud[c-f][0-9a-f]{2})?|(\\+)u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_REPLACEMENT = "\\ufffd"


def _repaired(data: bytes) -> str | None:
    """`data` with invalid UTF-8 and lone surrogate escapes replaced by U+FFFD; None if it has none."""
    text = _SURROGATE.sub(_lone_surrogate, data.decode("utf-8", errors="replace"))
    return None if text.encode() == data else text


def _lone_surrogate(match: re.Match[str]) -> str:
    if match.group(4) is not None:  # a low half on its own
        slashes = match.group(4)
        return match.group(0) if len(slashes) % 2 == 0 else slashes[:-1] + _REPLACEMENT
    slashes, high, low = match.group(1), match.group(2), match.group(3)
    if len(slashes) % 2 == 0:  # not an escape; a low half after it is on its own
        return slashes + "u" + high + (_REPLACEMENT if low else "")
    return match.group(0) if low else slashes[:-1] + _REPLACEMENT


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # isdigit() alone admits '²' and other digits int() refuses; a bound keeps int() cheap.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def _str_or_empty(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)

"""Bytes as the platform puts them on the wire: its JSON style, its envelope, its signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

import orjson

SIGNATURE_HEADER = "X-Hub-Signature-256"
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _escape_run(match: re.Match[str]) -> str:
    out: list[str] = []
    for char in match.group():
        code = ord(char)
        if code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:  # outside the BMP: a UTF-16 surrogate pair, as JSON requires
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


def encode(doc: Any) -> bytes:
    """Compact JSON with every non-ASCII character as a \\uXXXX escape and `/` as `\\/`.

    That is how the platform serializes webhook bodies, so a receiver that re-serializes
    instead of hashing the bytes it got fails the signature check here as it would in production.
    """
    # Each `/` becomes `\\/` exactly once: fragments below escape only non-ASCII.
    return _ascii(orjson.dumps(doc)).replace(b"/", b"\\/")


def _ascii(raw: bytes) -> bytes:
    return raw if raw.isascii() else _NON_ASCII.sub(_escape_run, raw.decode()).encode()


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value: `sha256=` and the HMAC-SHA256 hex digest of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def envelope(waba_id: str, field: str, value: dict[str, Any], time: int | None = None) -> dict[str, Any]:
    """One delivery with one change. `time` is set on the entry only where the platform sends it."""
    entry: dict[str, Any] = {"id": waba_id}
    if time is not None:
        entry["time"] = time
    entry["changes"] = [{"value": value, "field": field}]
    return {"object": "whatsapp_business_account", "entry": [entry]}


def metadata(display_phone_number: str, phone_number_id: str) -> dict[str, str]:
    return {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}


@lru_cache(maxsize=4096)
def json_str(text: str) -> orjson.Fragment:
    """`text` as an already-escaped JSON string, for strings that recur (pooled texts, emoji).

    Placing it in a document skips `encode`'s escaping pass for it, which is most of its cost.
    """
    return orjson.Fragment(_ascii(orjson.dumps(text)))


def json_value(value: Any) -> orjson.Fragment:
    """`value` encoded once, so the document around it has nothing left to escape."""
    return orjson.Fragment(_ascii(orjson.dumps(value)))

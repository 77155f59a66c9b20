"""`X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the app secret, as `sha256=<hex>`."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value the platform sends for `body`."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` exactly as received (never re-serialized)."""
    if not header or not header.startswith(PREFIX):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    # Hex digests are case-insensitive; compare in constant time whatever the sender's case.
    return hmac.compare_digest(expected, header[len(PREFIX) :].lower())

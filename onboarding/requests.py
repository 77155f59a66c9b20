"""The record of an onboarding accepted by the ingest's `POST /onboardings` (topic
`onboarding_requests`, keyed by phone_number_id), carried out by a stream worker.

The business's signup code or token must not sit in Kafka in clear: it is sealed with AES-GCM
under a key derived (HKDF-SHA256) from COEX_APP_SECRET, which the ingest and the workers share,
the number bound in as associated data (a sealed secret moved to another number's record does not
open). A record that does not decode or open is refused with its reason (`RequestRefused`).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from onboarding.sequence import Request

VERSION = 1
NONCE_BYTES = 12  # AES-GCM's standard nonce; random per record
_INFO = b"coex onboarding_requests v1"

Kind = Literal["code", "token"]


class RequestRefused(ValueError):
    """A request record that cannot be carried out: not ours, damaged, or sealed under another key."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A decoded request record: what to onboard, and when the ingest accepted it."""

    request: Request
    accepted_at: int  # unix seconds


def derive_key(app_secret: SecretStr) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return hkdf.derive(app_secret.get_secret_value().encode())


def encode(request: Request, accepted_at: int, key: bytes) -> bytes:
    """The record's value; exactly one of the request's code and token is set."""
    kind, secret = _secret_of(request)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, secret.get_secret_value().encode(), request.phone_number_id.encode())
    return orjson.dumps(
        {
            "v": VERSION,
            "waba_id": request.waba_id,
            "phone_number_id": request.phone_number_id,
            "accepted_at": accepted_at,
            "kind": kind,
            "nonce": _b64(nonce),
            "sealed": _b64(sealed),
        }
    )


def decode(value: bytes, key: bytes) -> Accepted:
    """The request of a record; RequestRefused (its reason never holds the secret) if it cannot be."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RequestRefused(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise RequestRefused(f"not an onboarding request of version {VERSION}")
    waba_id = _text(doc, "waba_id")
    pnid = _text(doc, "phone_number_id")
    kind = doc.get("kind")
    accepted_at = doc.get("accepted_at")
    if kind not in ("code", "token"):
        raise RequestRefused("kind is neither 'code' nor 'token'")
    if not isinstance(accepted_at, int) or isinstance(accepted_at, bool):
        raise RequestRefused("accepted_at is not an integer")
    try:
        nonce = base64.b64decode(_text(doc, "nonce"), validate=True)
        sealed = base64.b64decode(_text(doc, "sealed"), validate=True)
        secret = AESGCM(key).decrypt(nonce, sealed, pnid.encode()).decode()
    except (ValueError, InvalidTag):
        # A wrong key (another COEX_APP_SECRET), a damaged record, or a secret sealed for another number.
        raise RequestRefused("the sealed secret does not open with this COEX_APP_SECRET's key") from None
    sealed_secret = SecretStr(secret)
    request = Request(
        waba_id=waba_id,
        phone_number_id=pnid,
        code=sealed_secret if kind == "code" else None,
        token=sealed_secret if kind == "token" else None,
    )
    return Accepted(request, accepted_at)


def _secret_of(request: Request) -> tuple[Kind, SecretStr]:
    if request.code is not None and request.token is None:
        return "code", request.code
    if request.token is not None and request.code is None:
        return "token", request.token
    raise ValueError("an onboarding request carries exactly one of a code and a token")


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise RequestRefused(f"{name} is not a non-empty string")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

"""X-Hub-Signature-256: HMAC-SHA256 of the raw bytes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from ingest.signature import sign, verify

SECRET = b"app-secret"


def test_sign_is_the_platform_format() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == expected


@given(st.binary(max_size=2048), st.binary(min_size=1, max_size=64))
def test_a_body_verifies_with_its_own_signature(body: bytes, secret: bytes) -> None:
    assert verify(secret, body, sign(secret, body))
    assert verify(secret, body, sign(secret, body).upper().replace("SHA256=", "sha256="))


@given(st.binary(max_size=512), st.binary(min_size=1, max_size=512))
def test_any_other_body_fails(body: bytes, other: bytes) -> None:
    if other != body:
        assert not verify(SECRET, other, sign(SECRET, body))


def test_the_exact_bytes_count_not_the_json() -> None:
    body = b'{"entry": [], "object": "whatsapp_business_account"}'
    reserialized = b'{"entry":[],"object":"whatsapp_business_account"}'
    assert not verify(SECRET, reserialized, sign(SECRET, body))


def test_missing_malformed_or_foreign_headers_fail() -> None:
    body = b"{}"
    digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    for header in (None, "", digest, "sha1=" + digest, "sha256=", "sha256=zz", sign(b"other", body)):
        assert not verify(SECRET, body, header)

"""The onboarding request record: what the ingest writes the worker reads, the secret sealed."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from onboarding.requests import RequestRefused, decode, derive_key, encode
from onboarding.sequence import Request

KEY = derive_key(SecretStr("app-secret"))
ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
secrets = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=300)


@given(waba=ids, pnid=ids, secret=secrets, is_code=st.booleans(), at=st.integers(0, 2**40))
def test_round_trip(waba: str, pnid: str, secret: str, is_code: bool, at: int) -> None:
    sealed = SecretStr(secret)
    request = Request(waba, pnid, code=sealed if is_code else None, token=None if is_code else sealed)
    value = encode(request, at, KEY)
    back = decode(value, KEY)
    assert back.accepted_at == at
    assert (back.request.waba_id, back.request.phone_number_id) == (waba, pnid)
    got = back.request.code if is_code else back.request.token
    other = back.request.token if is_code else back.request.code
    assert got is not None and got.get_secret_value() == secret
    assert other is None


def test_secret_not_in_clear() -> None:
    value = encode(Request("w", "123", code=SecretStr("the-signup-code-ABC")), 0, KEY)
    assert b"the-signup-code-ABC" not in value
    assert set(orjson.loads(value)) == {"v", "waba_id", "phone_number_id", "accepted_at", "kind", "nonce", "sealed"}


def _value(**changes: object) -> bytes:
    doc = orjson.loads(encode(Request("w", "123", token=SecretStr("tok-secret")), 5, KEY))
    return orjson.dumps({**doc, **changes})


@given(data=st.data())
def test_tampered_ciphertext_refused(data: st.DataObject) -> None:
    doc = orjson.loads(_value())
    sealed = bytearray(base64.b64decode(doc["sealed"]))
    at = data.draw(st.integers(0, len(sealed) - 1))
    sealed[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(RequestRefused, match="does not open"):
        decode(_value(sealed=base64.b64encode(bytes(sealed)).decode()), KEY)


def test_secret_moved_to_another_number_refused() -> None:
    with pytest.raises(RequestRefused, match="does not open"):
        decode(_value(phone_number_id="456"), KEY)


def test_another_app_secret_refused() -> None:
    with pytest.raises(RequestRefused, match="does not open"):
        decode(_value(), derive_key(SecretStr("another-secret")))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "not an onboarding request"),
        (_value(v=2), "not an onboarding request"),
        (_value(kind="password"), "kind"),
        (_value(waba_id=""), "waba_id"),
        (_value(accepted_at="5"), "accepted_at"),
        (_value(nonce="***"), "does not open"),
    ],
)
def test_bad_records_refused_with_reason(value: bytes, reason: str) -> None:
    with pytest.raises(RequestRefused, match=reason) as caught:
        decode(value, KEY)
    assert "tok-secret" not in str(caught.value)


def test_request_needs_exactly_one_secret() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        encode(Request("w", "1"), 0, KEY)
    with pytest.raises(ValueError, match="exactly one"):
        encode(Request("w", "1", code=SecretStr("c"), token=SecretStr("t")), 0, KEY)

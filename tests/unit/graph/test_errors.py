"""Reading Graph's error answers: any body yields a GraphError, never a crash."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from graph.errors import GraphError, parse_error, retry_after

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
FIELDS = st.sampled_from(["message", "type", "code", "error_subcode", "fbtrace_id", "is_transient"])
STATUSES = st.integers(min_value=100, max_value=599)


@given(STATUSES, JSON)
def test_any_json_yields_a_graph_error(status: int, document: object) -> None:
    error = parse_error(status, json.dumps(document).encode())
    assert isinstance(error, GraphError) and error.status == status
    assert isinstance(str(error), str) and isinstance(repr(error), str)


@given(STATUSES, st.dictionaries(FIELDS, JSON))
def test_any_error_object_yields_a_graph_error(status: int, fields: dict[str, object]) -> None:
    error = parse_error(status, json.dumps({"error": fields}).encode())
    assert error.code is None or isinstance(error.code, int)
    assert error.subcode is None or isinstance(error.subcode, int)
    assert isinstance(error.message, str) and error.message
    assert error.transient == (status == 429 or status >= 500 or fields.get("is_transient") is True or error.transient)


@given(STATUSES, st.binary())
def test_any_bytes_yield_a_graph_error(status: int, body: bytes) -> None:
    assert isinstance(parse_error(status, body), GraphError)


def test_a_graph_error_body_is_read_field_by_field() -> None:
    body = {
        "error": {
            "message": "(#131056) pair rate limit hit",
            "type": "OAuthException",
            "code": "131016",
            "error_subcode": 2494010,
            "fbtrace_id": "A4O5a8RAgePwbcGSu",
        }
    }
    error = parse_error(400, orjson.dumps(body))
    assert (error.code, error.subcode, error.type, error.fbtrace_id) == (
        131016,
        2494010,
        "OAuthException",
        "A4O5a8RAgePwbcGSu",
    )
    assert error.transient  # 131016: service unavailable


def test_transience() -> None:
    def transient(status: int, error: dict[str, object]) -> bool:
        return parse_error(status, orjson.dumps({"error": error})).transient

    assert transient(500, {"code": 100})
    assert transient(429, {})
    assert transient(400, {"code": 4})
    assert transient(400, {"code": 100, "is_transient": True})
    assert not transient(400, {"code": 100, "is_transient": False})
    assert not transient(400, {"code": 190})
    assert not transient(400, {"code": 1})  # also a wrong client secret
    assert not transient(404, {})
    assert parse_error(502, b"<html>Bad Gateway</html>").transient
    assert parse_error(502, b"<html>Bad Gateway</html>").message == "<html>Bad Gateway</html>"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)
    assert retry_after({"retry-after": "7"}, now) == 7.0
    assert retry_after({"retry-after": "Mon, 07 Dec 2026 05:00:30 GMT"}, now) == 30.0
    assert retry_after({"retry-after": "Mon, 07 Dec 2026 04:00:00 GMT"}, now) == 0.0
    assert retry_after({}, now) is None
    assert retry_after({"retry-after": "soon"}, now) is None
    assert retry_after({"retry-after": "nan"}, now) is None
    assert retry_after({"retry-after": "-3"}, now) == 0.0


def test_a_graph_error_survives_pickling() -> None:
    error = parse_error(503, orjson.dumps({"error": {"message": "down", "code": 2, "fbtrace_id": "T"}}))
    error.attempts = 4
    error.outcome_unknown = True
    copy = pickle.loads(pickle.dumps(error))
    assert repr(copy) == repr(error) and str(copy) == str(error)

"""Which ClickHouse write failures are the rows' (split the batch) and which the server's (retry)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.errors import REFUSED, Failure, classify, error_code

TOO_MANY_PARTITIONS = (
    "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is "
    "controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS)"
)


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        # The rows: the same insert fails every time.
        (TOO_MANY_PARTITIONS, Failure.REFUSED),
        ("Code: 407. DB::Exception: DateTime64 convert overflow. (DECIMAL_OVERFLOW)", Failure.REFUSED),
        ("Code: 53. DB::Exception: Type mismatch in VALUES section. (TYPE_MISMATCH)", Failure.REFUSED),
        ("Code: 70. DB::Exception: Conversion from String to UInt8 is not supported", Failure.REFUSED),
        ("Code: 6. DB::Exception: Cannot parse string 'x' as UInt32. (CANNOT_PARSE_TEXT)", Failure.REFUSED),
        ("Code: 41. DB::Exception: Cannot parse datetime. (CANNOT_PARSE_DATETIME)", Failure.REFUSED),
        ("Code: 349. DB::Exception: Cannot convert NULL value to non-Nullable type", Failure.REFUSED),
        ("Code: 469. DB::Exception: Constraint `c` for table coex.t is violated", Failure.REFUSED),
        # The server: the same insert may pass later.
        (
            "Code: 252. DB::Exception: Too many parts (600). Merges are slower than inserts",
            Failure.RETRIABLE,
        ),
        ("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", Failure.RETRIABLE),
        ("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)", Failure.RETRIABLE),
        ("Code: 159. DB::Exception: Timeout exceeded: elapsed 60 seconds. (TIMEOUT_EXCEEDED)", Failure.RETRIABLE),
        (
            "Code: 209. DB::NetException: Timeout while reading from socket. (SOCKET_TIMEOUT)",
            Failure.RETRIABLE,
        ),
        ("Code: 210. DB::NetException: Connection refused. (NETWORK_ERROR)", Failure.RETRIABLE),
        ("Code: 60. DB::Exception: Table coex.messages does not exist. (UNKNOWN_TABLE)", Failure.RETRIABLE),
        ("Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)", Failure.RETRIABLE),
        ("Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)", Failure.RETRIABLE),
        # No code: the way to the server (clickhouse-connect, the owner's endpoint, a dropped socket).
        ("Error HTTPConnectionPool(host='ch', port=8123): Max retries exceeded", Failure.RETRIABLE),
        ("engine endpoint answered 502", Failure.RETRIABLE),
        ("[Errno 111] Connection refused", Failure.RETRIABLE),
        ("", Failure.RETRIABLE),
    ],
)
def test_a_failure_is_classified_by_its_code(message: str, failure: Failure) -> None:
    assert classify(message) is failure


def test_the_code_is_read_as_each_client_reports_it() -> None:
    http = (
        "HTTPDriver for http://localhost:8123 received ClickHouse error code 407\n"
        " Code: 407. DB::Exception: DateTime64 convert overflow. (DECIMAL_OVERFLOW) (version 25.8)"
    )
    assert error_code(http) == 407
    assert error_code(TOO_MANY_PARTITIONS) == 252
    assert error_code("ClickHouse is down") is None
    assert error_code("Error Code: 5") is None  # not ClickHouse's "Code: N." form


@given(st.integers(0, 2000), st.text())
def test_only_the_refused_codes_split_a_batch(code: int, rest: str) -> None:
    failure = classify(f"Code: {code}. DB::Exception: {rest}")
    if failure is Failure.REFUSED:
        assert code in REFUSED or (code == 252 and "Too many partitions" in rest)
    elif code in REFUSED:
        raise AssertionError(f"code {code} is the rows' and was not refused")

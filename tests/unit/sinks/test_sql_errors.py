"""`coex sql` reports a ClickHouse error as one line, its message once."""

from __future__ import annotations

from sinks.sql_cli import innermost, one_line

NESTED = (
    "Code: 73. DB::Exception: Code: 73. DB::Exception: Code: 73. DB::Exception: Unknown format Bogus. "
    "(UNKNOWN_FORMAT) (version 26.9.2.1). (UNKNOWN_FORMAT) (version 26.9.2.1). (UNKNOWN_FORMAT)"
)


def test_a_wrapped_error_reads_as_its_innermost_message_once() -> None:
    assert innermost(NESTED) == "Code: 73. DB::Exception: Unknown format Bogus. (UNKNOWN_FORMAT)"
    assert one_line(RuntimeError(NESTED + "\nStack trace: ...")) == innermost(NESTED)


def test_other_errors_keep_their_words() -> None:
    opened = "Failed to create connection: Code: 36. DB::Exception: Bad path. (BAD_ARGUMENTS) (version 26.9.2.1)"
    assert innermost(opened) == "Failed to create connection: Code: 36. DB::Exception: Bad path. (BAD_ARGUMENTS)"
    assert innermost("Connection refused") == "Connection refused"
    assert one_line(TimeoutError()) == "TimeoutError"

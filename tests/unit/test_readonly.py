"""The statement checks of `coex sql` and of the engine endpoint: pure, no engine."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.statements import StatementRefused, check_read_only, check_table_insert, split_format

TABLES = frozenset({"messages", "message_statuses"})


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM messages FINAL",
        "  select 1;  ",
        "WITH 1 AS x SELECT x",
        "SHOW TABLES",
        "DESCRIBE TABLE messages",
        "desc messages",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE messages",
        "-- a comment\nSELECT 1",
        "/* block */ SELECT 'a;b' -- trailing ; comment",
        "SELECT `weird;name` FROM t",
        "SELECT 1 SETTINGS final = 1",
        "SELECT file, url FROM (SELECT 1 AS file, 2 AS url)",
        "SELECT 'file(x)'",
        "(SELECT 1) UNION ALL (SELECT 2)",
    ],
)
def test_read_only_statements_pass(sql: str) -> None:
    assert check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("INSERT INTO messages VALUES (1)", "not INSERT"),
        ("DROP TABLE messages", "not DROP"),
        ("ALTER TABLE messages DELETE WHERE 1", "not ALTER"),
        ("TRUNCATE messages", "not TRUNCATE"),
        ("SELECT 1; DROP TABLE messages", "one statement"),
        ("SELECT 1;;SELECT 2", "one statement"),
        ("", "empty"),
        ("  ;  ", "empty"),
        ("-- only a comment", "empty"),
        ("SELECT * FROM messages INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("SELECT 'unterminated", "unterminated"),
        ("/* SELECT */ DELETE FROM messages WHERE 1", "not DELETE"),
        ("SET readonly = 0", "not SET"),
        ("SELECT count() FROM file('/etc/hostname', 'LineAsString')", "file\\(\\) reads outside"),
        ("SELECT file('/etc/passwd')", "file\\(\\) reads outside"),
        ("SELECT * FROM url ('http://x/y', CSV)", "url\\(\\) reads outside"),
        ("SELECT * FROM remote('h', system.one)", "remote"),
        ("SELECT * FROM s3Cluster('c', 'https://b/k')", "s3cluster"),
        ("(DROP TABLE messages)", "not DROP"),
    ],
)
def test_writes_and_tricks_are_refused(sql: str, reason: str) -> None:
    with pytest.raises(StatementRefused, match=reason):
        check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "statement", "fmt"),
    [
        ("SELECT 1 FORMAT JSONEachRow", "SELECT 1", "JSONEachRow"),
        ("select * from messages final format CSV ;", "select * from messages final", "CSV"),
        ("SELECT 1\nFORMAT\tVertical", "SELECT 1", "Vertical"),
        ("SELECT 1", "SELECT 1", None),
        ("SELECT 1 AS format", "SELECT 1 AS format", None),
        ("SELECT 'x FORMAT CSV'", "SELECT 'x FORMAT CSV'", None),
    ],
)
def test_a_statement_s_own_format_is_taken_out(sql: str, statement: str, fmt: str | None) -> None:
    assert split_format(sql) == (statement, fmt)


def test_trailing_semicolons_are_dropped() -> None:
    assert check_read_only("SELECT 1 ;; ") == "SELECT 1"


@given(st.text())
def test_any_string_literal_is_one_select(text: str) -> None:
    literal = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    assert check_read_only(f"SELECT {literal}") == f"SELECT {literal}"


@given(st.text())
def test_the_checker_never_fails_otherwise(sql: str) -> None:
    with contextlib.suppress(StatementRefused):
        check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("INSERT INTO coex.messages (a) SELECT 1", "messages"),
        ("insert into message_statuses SELECT * FROM x", "message_statuses"),
        ("INSERT INTO `coex`.`messages` SELECT 1", "messages"),
    ],
)
def test_peer_inserts_into_coex_tables_pass(sql: str, table: str) -> None:
    assert check_table_insert(sql, TABLES, "coex") == table


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO other SELECT 1",
        "INSERT INTO otherdb.messages SELECT 1",
        "INSERT INTO FUNCTION file('x') SELECT 1",
        "SELECT 1",
        "DROP TABLE messages",
        "INSERT INTO messages SELECT 1; DROP TABLE messages",
    ],
)
def test_other_writes_are_refused_for_peers(sql: str) -> None:
    with pytest.raises(StatementRefused):
        check_table_insert(sql, TABLES, "coex")

"""The statement checks on ClickHouse's EXPLAIN AST, given its answers as text: pure, no engine.

tests/integration/test_sql_guard.py runs the same checks on the real engine's parse."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.statements import (
    StatementRefused,
    check_read_only,
    check_table_insert,
    parse_tree,
    split_format,
    sql_string,
)

TABLES = frozenset({"messages", "message_statuses"})


def tree(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# EXPLAIN AST answers of ClickHouse 26.9, as chdb gives them.
SELECT_NUMBERS = tree(
    """
    SelectWithUnionQuery (children 1)
     ExpressionList (children 1)
      SelectQuery (children 2)
       ExpressionList (children 1)
        Asterisk
       TablesInSelectQuery (children 1)
        TablesInSelectQueryElement (children 1)
         TableExpression (children 1)
          Function numbers (alias n) (children 1)
           ExpressionList (children 1)
            Literal UInt64_3
    """
)
SELECT_FROM_FILE = SELECT_NUMBERS.replace("Function numbers (alias n)", "Function file")
SELECT_FILE_FUNCTION = tree(
    """
    SelectWithUnionQuery (children 1)
     ExpressionList (children 1)
      SelectQuery (children 1)
       ExpressionList (children 1)
        Function file (children 1)
         ExpressionList (children 1)
          Literal '/etc/passwd'
    """
)
SELECT_INTO_OUTFILE = tree(
    """
    SelectWithUnionQuery (children 2)
     ExpressionList (children 1)
      SelectQuery (children 1)
       ExpressionList (children 1)
        Literal UInt64_1
     Literal '/tmp/x'
    """
)
# `SELECT * FROM t AS `a<newline>      Function numbers`` hiding nothing, but not one tree any more.
SPILLED_ALIAS = tree(
    """
    SelectWithUnionQuery (children 1)
     ExpressionList (children 1)
      SelectQuery (children 2)
       ExpressionList (children 1)
        Asterisk
       TablesInSelectQuery (children 1)
        TablesInSelectQueryElement (children 1)
         TableExpression (children 1)
          TableIdentifier t (alias a
          Function numbers)
    """
)
INSERT_SELECT = tree(
    """
    InsertQuery   (children 4)
     Identifier coex
     Identifier messages
     ExpressionList (children 1)
      Identifier message_id
     SelectWithUnionQuery (children 1)
      ExpressionList (children 1)
       SelectQuery (children 1)
        ExpressionList (children 1)
         Literal 'x'
    """
)


def test_reads_pass() -> None:
    check_read_only("SELECT * FROM numbers(3) AS n", SELECT_NUMBERS)
    check_read_only("SHOW TABLES", "ShowTables")
    check_read_only("EXISTS TABLE t", "ExistsTableQuery  t (children 1)\n Identifier t")


@pytest.mark.parametrize(
    ("canonical", "explain", "reason"),
    [
        ("SELECT * FROM file('/etc/passwd')", SELECT_FROM_FILE, "table function file"),
        ("SELECT file('/etc/passwd')", SELECT_FILE_FUNCTION, "file\\(\\) reads the host"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", SELECT_INTO_OUTFILE, "OUTFILE"),
        ("DROP TABLE messages", "DropQuery  messages (children 1)\n Identifier messages", "not DROP"),
        ("SELECT * FROM t AS `a\\n      Function numbers`", SPILLED_ALIAS, "line break"),
    ],
)
def test_what_reaches_outside_or_writes_is_refused(canonical: str, explain: str, reason: str) -> None:
    with pytest.raises(StatementRefused, match=reason):
        check_read_only(canonical, explain)


def test_a_name_that_spills_lines_never_passes_as_a_tree() -> None:
    with pytest.raises(StatementRefused, match="line break"):
        parse_tree(SPILLED_ALIAS)
    with pytest.raises(StatementRefused, match="line break"):
        parse_tree("ExistsTableQuery  t\nSelectWithUnionQuery (children 1)\n Identifier t")  # two roots
    assert [node.depth for node in parse_tree(SELECT_NUMBERS)] == [0, 1, 2, 3, 4, 3, 4, 5, 6, 7, 8]


@given(st.lists(st.sampled_from(["", " ", "  ", "x", " y (children 1)", "Function file"]), min_size=1, max_size=6))
def test_lines_spilled_anywhere_into_a_tree_are_refused(spill: list[str]) -> None:
    lines = SELECT_NUMBERS.splitlines()
    spilled = "\n".join([*lines[:8], lines[8] + "\n" + "\n".join(spill), *lines[9:]])
    with pytest.raises(StatementRefused):
        parse_tree(spilled)


def test_peer_inserts_into_coex_tables_pass() -> None:
    assert check_table_insert(INSERT_SELECT, TABLES, "coex") == "messages"
    assert check_table_insert(INSERT_SELECT.replace("Identifier coex", "Identifier COEX"), TABLES, "coex") == "messages"


@pytest.mark.parametrize(
    ("explain", "reason"),
    [
        (INSERT_SELECT.replace("Identifier coex", "Identifier other"), "database coex, not other"),
        (INSERT_SELECT.replace("Identifier messages", "Identifier users"), "users is not a coex table"),
        ("InsertQuery   (children 2)\n Literal '/etc/passwd'\n Identifier messages", "INFILE"),
        ("InsertQuery   (children 1)\n Identifier messages", "SELECT is allowed"),
        (SELECT_NUMBERS, "SELECT is allowed"),
    ],
)
def test_other_writes_are_refused_for_peers(explain: str, reason: str) -> None:
    with pytest.raises(StatementRefused, match=reason):
        check_table_insert(explain, TABLES, "coex")


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


@pytest.mark.parametrize(
    ("sql", "reason"), [("", "empty"), (" ; ", "empty"), ("SELECT 1; DROP TABLE t", "one statement")]
)
def test_split_format_wants_one_statement(sql: str, reason: str) -> None:
    with pytest.raises(StatementRefused, match=reason):
        split_format(sql)


@given(st.text())
def test_a_string_literal_holds_any_text(text: str) -> None:
    literal = sql_string(text)
    body = literal[1:-1].replace("\\\\", "")
    assert literal[0] == literal[-1] == "'" and "'" not in body.replace("\\'", "")

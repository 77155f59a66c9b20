"""What SQL the sinks let through, judged on ClickHouse's own parse of the statement.

The engine that runs a statement first parses it twice, both without running it (sinks/engine.py):
`SELECT formatQuery('<statement>')` gives it back as exactly one statement in ClickHouse's canonical
spelling (quotes, escapes, comments and case resolved; more than one statement is an error), and
`EXPLAIN AST <canonical>` gives its syntax tree, one node a line, indented by depth. The checks here
walk that tree; the canonical text is what then runs. Analysts' handles are also `readonly = 1`
(ClickHouse's access control: no writes, no settings changed by the query, no table function
that is not read-only), so these checks are the second wall for what `readonly` lets through:
`file()` as a plain function, `INTO OUTFILE`, chdb's `Python()`.

`split_format` is a convenience, not a guard: a small lexer finds a statement's own trailing
`FORMAT <name>` so the output format can be given to the client apart.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

# Statement kinds that only read, by the first word of the root node's line in EXPLAIN AST.
READ_KINDS = ("Select", "Explain", "Describe", "Exists", "Show")
READ_STATEMENTS = "SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS"
READ_WORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

# Table functions a query may read from: ones that make rows from their arguments alone. Every
# other one (file, url, s3, remote, mysql, executable, Python, merge, cluster, ...) is refused.
TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generateseries", "generate_series", "primes", "values", "null",
     "generaterandom", "view"}
)  # fmt: skip

# Plain functions that read the host: `file(path)` returns a file's bytes, `readonly` or not
# (checked against system.functions of ClickHouse 26.9: the only one).
HOST_FUNCTIONS = frozenset({"file"})

_NODE = re.compile(r"^(?P<indent> *)(?P<kind>\S+)(?P<rest>.*)$")
_CHILDREN = re.compile(r" \(children (\d+)\)$")
_SPILLED = "a name holding a line break is not allowed"
_FUNCTION = re.compile(r"^Function (?P<name>[A-Za-z_][A-Za-z0-9_]*)(?: \(alias .*\))?(?: \(children \d+\))?$")
_ANY_FUNCTION = re.compile(r"^ *Function (?P<name>\S+)")
_FIRST_WORD = re.compile(r"\W*(\w+)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:;\s*)*$", re.IGNORECASE)


class StatementRefused(ValueError):
    """The statement is not one the caller may run here; the message says why."""


@dataclass(frozen=True, slots=True)
class Node:
    depth: int
    kind: str
    rest: str  # the line after the kind: a name, `(alias x)`, `(children n)`

    @property
    def line(self) -> str:
        return f"{self.kind}{self.rest}"


def check_format(name: str) -> str:
    """An output format's name, else StatementRefused: the client appends `FORMAT <name>` to the
    statement, so anything but a name would be more SQL."""
    if _FORMAT_NAME.fullmatch(name) is None:
        raise StatementRefused(f"{name!r} is not an output format name")
    return name


def sql_string(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_tree(explain_ast: str) -> list[Node]:
    """The lines of an EXPLAIN AST answer as nodes, in order, once they are shown to be one tree.

    Names are printed raw, so a quoted name holding a line break spills onto lines of its own. A
    spilled line is a node whose parent's `(children n)` (printed before it) does not count it, so
    a tree whose counts do not add up is refused: the lines checked are ClickHouse's own nodes."""
    nodes = []
    for line in explain_ast.splitlines():
        match = _NODE.match(line)
        if match is None:
            raise StatementRefused(_SPILLED)
        nodes.append(Node(len(match["indent"]), match["kind"], match["rest"]))
    if not nodes:
        raise StatementRefused("empty statement")
    counted = [0] * len(nodes)
    parents: list[int] = []  # index of the open node at each depth
    for i, node in enumerate(nodes):
        if (i == 0) != (node.depth == 0) or node.depth > len(parents):
            raise StatementRefused(_SPILLED)
        del parents[node.depth :]
        if parents:
            counted[parents[-1]] += 1
        parents.append(i)
    for node, count in zip(nodes, counted, strict=True):
        declared = _CHILDREN.search(node.rest)
        if count != (int(declared.group(1)) if declared else 0):
            raise StatementRefused(_SPILLED)
    return nodes


def first_word(canonical: str) -> str:
    match = _FIRST_WORD.match(canonical)
    return match.group(1).upper() if match else canonical


def _check_functions(nodes: list[Node]) -> None:
    for before, node in itertools.pairwise(nodes):
        if before.kind == "TableExpression" and node.depth == before.depth + 1 and node.kind == "Function":
            match = _FUNCTION.match(node.line)
            if match is None or match["name"].lower() not in TABLE_FUNCTIONS:
                name = match["name"] if match else node.rest.strip()
                raise StatementRefused(f"table function {name}() is not allowed: coex sql reads the database only")
    for node in nodes:
        match = _ANY_FUNCTION.match(node.line)
        if match is not None and match["name"].lower() in HOST_FUNCTIONS:
            raise StatementRefused(f"{match['name']}() reads the host's files; not allowed")


def check_read_statement(canonical: str) -> None:
    """Refuse early, by its first word, a statement that is no read (some do not EXPLAIN at all)."""
    if first_word(canonical) not in READ_WORDS:
        raise StatementRefused(
            f"only read-only statements are allowed ({READ_STATEMENTS}), not {first_word(canonical)}"
        )


def check_read_only(canonical: str, explain_ast: str) -> None:
    """Refuse unless the statement only reads the database (StatementRefused says why)."""
    check_read_statement(canonical)
    nodes = parse_tree(explain_ast)
    if not nodes[0].kind.startswith(READ_KINDS):
        raise StatementRefused(
            f"only read-only statements are allowed ({READ_STATEMENTS}), not {first_word(canonical)}"
        )
    if any(node.depth == 1 and node.kind == "Literal" for node in nodes):
        raise StatementRefused("INTO OUTFILE writes a file; not allowed")
    _check_functions(nodes)


def check_table_insert(explain_ast: str, tables: frozenset[str], database: str) -> str:
    """The table of an `INSERT INTO [database.]table [(columns)] SELECT ...` into one of `tables`."""
    nodes = parse_tree(explain_ast)
    top = [node for node in nodes if node.depth == 1]
    if any(node.kind == "Literal" for node in top):
        raise StatementRefused("FROM INFILE reads a file; not allowed")
    if nodes[0].kind != "InsertQuery" or not any(node.kind == "SelectWithUnionQuery" for node in top):
        raise StatementRefused("only INSERT INTO a coex table ... SELECT is allowed here (rows go through /insert)")
    names: list[str] = []
    for node in top:
        if node.kind != "Identifier":
            break
        names.append(node.rest.strip())
    if not names or len(names) > 2:
        raise StatementRefused("only INSERT INTO a coex table is allowed here")
    if len(names) == 2 and names[0].lower() != database.lower():
        raise StatementRefused(f"inserts go to database {database}, not {names[0]}")
    table = names[-1].lower()
    if table not in tables:
        raise StatementRefused(f"{table} is not a coex table")
    _check_functions(nodes)
    return table


def _skip_quoted(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote escapes itself
                i += 2
                continue
            return i + 1
        i += 1
    raise StatementRefused("unterminated quoted text")


def tokens(sql: str) -> list[str]:
    """Upper-cased bare words and punctuation, outside literals and comments (quoted names: one token)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise StatementRefused("unterminated comment")
            i = end + 2
        elif ch in "'`\"":
            end = _skip_quoted(sql, i)
            out.append(sql[i:end])
            i = end
        elif (match := _WORD.match(sql, i)) is not None:
            out.append(match.group(0).upper())
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return out


def split_format(sql: str) -> tuple[str, str | None]:
    """A statement's own trailing `FORMAT <name>` taken out of it: (statement, name or None).

    The output format is given to the client apart (it appends its own FORMAT clause)."""
    words = tokens(sql)
    while words and words[-1] == ";":
        words.pop()
    if not words:
        raise StatementRefused("empty statement")
    if ";" in words:
        raise StatementRefused("one statement at a time")
    match = _TRAILING_FORMAT.search(sql)
    if len(words) < 3 or words[-2] != "FORMAT" or match is None:
        return sql, None
    return sql[: match.start()], match.group(1)

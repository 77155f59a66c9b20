"""What SQL the sinks let through: read-only statements for analysts, coex-table inserts for peers.

A small lexer, not a parser: it skips string literals, quoted identifiers and comments, so a `;`
or a keyword inside them never counts. The engine's `readonly` setting is the second guard.
"""

from __future__ import annotations

import itertools
import re

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:;\s*)*$", re.IGNORECASE)

# Functions that read outside the database: files of the host running the engine (on the embedded
# engine, the worker's machine, whatever its user may read), URLs, object stores, other servers,
# programs. `readonly` lets them through; analyst SQL has no use for them here.
OUTSIDE_FUNCTIONS = frozenset(
    {
        "FILE", "FILECLUSTER", "URL", "URLCLUSTER", "S3", "S3CLUSTER", "GCS", "OSS", "COSN", "HDFS",
        "HDFSCLUSTER", "AZUREBLOBSTORAGE", "AZUREBLOBSTORAGECLUSTER", "REMOTE", "REMOTESECURE", "CLUSTER",
        "CLUSTERALLREPLICAS", "MYSQL", "POSTGRESQL", "SQLITE", "ODBC", "JDBC", "MONGODB", "REDIS",
        "EXECUTABLE", "ICEBERG", "DELTALAKE", "HUDI", "PYTHON",
    }
)  # fmt: skip


class StatementRefused(ValueError):
    """The statement is not one the caller may run here; the message says why."""


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
    """Upper-cased bare words and `;`/`(`/`.` punctuation, outside literals and comments.

    Quoted identifiers come back as one token with their quotes stripped (not upper-cased).
    """
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
        elif ch == "'":
            i = _skip_quoted(sql, i)
            out.append("'")
        elif ch in '`"':
            end = _skip_quoted(sql, i)
            out.append(sql[i + 1 : end - 1])
            i = end
        elif (match := _WORD.match(sql, i)) is not None:
            out.append(match.group(0).upper())
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return out


def _one_statement(sql: str) -> list[str]:
    words = tokens(sql)
    while words and words[-1] == ";":
        words.pop()
    if not words:
        raise StatementRefused("empty statement")
    if ";" in words:
        raise StatementRefused("one statement at a time")
    return words


def check_read_only(sql: str) -> str:
    """The statement without trailing `;` when it only reads, else StatementRefused."""
    words = _one_statement(sql)
    first = next((w for w in words if w != "("), words[0])  # `(SELECT ...) UNION ALL (SELECT ...)`
    if first not in READ_ONLY_KEYWORDS:
        allowed = ", ".join(sorted(READ_ONLY_KEYWORDS))
        raise StatementRefused(f"only read-only statements are allowed ({allowed}), not {first}")
    if any(a == "INTO" and b == "OUTFILE" for a, b in itertools.pairwise(words)):
        raise StatementRefused("INTO OUTFILE writes a file; not allowed")
    for a, b in itertools.pairwise(words):
        if b == "(" and a in OUTSIDE_FUNCTIONS:
            raise StatementRefused(f"{a.lower()}() reads outside the database; not allowed")
    return sql.strip().rstrip(";").rstrip()


def split_format(sql: str) -> tuple[str, str | None]:
    """A statement's own trailing `FORMAT <name>` taken out of it: (statement, name or None).

    The output format is given to the client apart (it appends its own FORMAT clause)."""
    words = _one_statement(sql)
    match = _TRAILING_FORMAT.search(sql)
    if len(words) < 3 or words[-2] != "FORMAT" or match is None:
        return sql, None
    return sql[: match.start()], match.group(1)


def check_table_insert(sql: str, tables: frozenset[str], database: str) -> str:
    """The table of an `INSERT INTO [database.]table ...` into one of `tables`, else StatementRefused."""
    words = _one_statement(sql)
    if words[:2] != ["INSERT", "INTO"] or len(words) < 3 or words[2] in ("FUNCTION", "TABLE"):
        raise StatementRefused("only INSERT INTO a coex table is allowed here")
    if len(words) >= 5 and words[3] == ".":
        db, table = words[2], words[4]
        if db.lower() != database.lower():
            raise StatementRefused(f"inserts go to database {database}, not {db}")
    else:
        table = words[2]
    table = table.lower()
    if table not in tables:
        raise StatementRefused(f"{table} is not a coex table")
    return table

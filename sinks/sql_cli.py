"""`coex sql "SELECT ..." --format F`: read-only SQL against the configured ClickHouse.

Works against a server, against an embedded engine a running worker owns (through its endpoint),
or by opening the engine folder when nobody owns it. The engine that runs the statement judges it
(sinks/engine.py `query_readonly`). The result bytes go to stdout as ClickHouse formats them. Exit 2
when the statement is refused (not read-only), 1 when it fails. No output shows the URL's password.
"""

from __future__ import annotations

import argparse
import re
import sys

from runtime.redact import redact_url, scrub
from runtime.settings import Settings
from sinks.connect import open_engine
from sinks.statements import StatementRefused, split_format

EXIT_FAILED = 1
EXIT_REFUSED = 2


def one_line(error: BaseException) -> str:
    """ClickHouse errors span lines and repeat themselves; keep the first line, trimmed."""
    text = str(error).strip() or type(error).__name__
    first = innermost(text.splitlines()[0])
    return first if len(first) <= 500 else first[:497] + "..."


def innermost(line: str) -> str:
    """An error ClickHouse wrapped once per layer it passed (`Code: 73. DB::Exception: Code: 73. ...`,
    then `(version ...). (NAME)` as often) as one `Code: N. DB::Exception: message. (NAME)`."""
    start = line.find("Code: ")
    code = re.match(r"Code: (\d+)\. DB::Exception: ", line[start:]) if start >= 0 else None
    if code is None:
        return line
    message = line.rpartition("DB::Exception: ")[2].split(" (version ")[0]
    return f"{line[:start]}Code: {code.group(1)}. DB::Exception: {message}"


def run(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.clickhouse_url

    def say(line: str) -> None:
        sys.stderr.write(scrub(line, url) + "\n")

    try:
        statement, inline_format = split_format(args.query)
    except StatementRefused as exc:
        say(f"coex sql: refused: {exc}")
        return EXIT_REFUSED
    try:
        engine = open_engine(settings, create_database=False)
    except Exception as exc:
        say(f"coex sql: cannot open ClickHouse {redact_url(url)}: {one_line(exc)}")
        return EXIT_FAILED
    try:
        result = engine.query_readonly(statement, inline_format or args.format)
    except StatementRefused as exc:
        say(f"coex sql: refused: {one_line(exc)}")
        return EXIT_REFUSED
    except Exception as exc:
        hint = ""
        if "TOO_MANY_ROWS" in str(exc):
            hint = f" (results stop at COEX_SQL_MAX_ROWS={settings.sql_max_rows:,} rows; raise it to export more)"
        elif "UNKNOWN_DATABASE" in str(exc):
            hint = f" (no schema at {redact_url(url)} yet: run `coex migrate`, or start `coex dev`)"
        say(f"coex sql: failed: {one_line(exc)}{hint}")
        return EXIT_FAILED
    finally:
        engine.close()
    sys.stdout.buffer.write(result)
    sys.stdout.flush()
    return 0

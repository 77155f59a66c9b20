"""`coex sql`'s guard on the real embedded engine: no statement reads the host's files, reaches a
loopback service, writes, or lifts the analyst limits, however it is spelled; analysts' statements
run side by side; and no output shows the ClickHouse password."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.settings import Settings
from sinks.connect import open_engine
from sinks.engine import ClientEngine
from sinks.migrate import apply_migrations
from sinks.statements import StatementRefused
from sinks.tables import WRITABLE_TABLES

ROOT = Path(__file__).resolve().parents[2]
COEX = str(ROOT / ".venv" / "bin" / "coex")
SECRET = "s3cret-line-of-the-host"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture(scope="module")
def engine(clickhouse_url: str) -> Iterator[ClientEngine]:
    """The session's embedded engine, a database of this module's own (only reads, but for one test)."""
    database = f"coex_guard_{uuid.uuid4().hex[:10]}"
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=database, sql_max_rows=1000)
    opened = open_engine(settings)
    assert isinstance(opened, ClientEngine)
    apply_migrations(opened, database)
    try:
        yield opened
    finally:
        opened.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        opened.close()


def outcome(engine: ClientEngine, sql: str) -> str:
    """What an analyst sees: the result, or the refusal or failure message."""
    try:
        return engine.query_readonly(sql, "TSV").decode(errors="replace")
    except StatementRefused as exc:
        return f"refused: {exc}"
    except DatabaseError as exc:
        return f"failed: {exc}"


# Ways to name the table function / the plain function `file` that ClickHouse's parser resolves.
FILE_SPELLINGS = ["file", "`file`", '"file"', "`fi\\x6ce`", '"fi\\x6Ce"', "`\\x66ile`"]
FILE_READS = [
    "SELECT * FROM {f}('{p}', 'LineAsString')",
    "SELECT * FROM /* c */ {f} /* c */ ('{p}', 'LineAsString') -- c",
    "SELECT * FROM {f} -- c\n('{p}', 'LineAsString')",
    "select line from {f}('{p}', LineAsString, 'line String') as t",
    "SELECT {f}('{p}')",
    "SELECT arrayMap(x -> {f}(x), ['{p}'])",
    "SELECT * FROM view(SELECT * FROM {f}('{p}', 'LineAsString'))",
    "WITH t AS (SELECT * FROM {f}('{p}', 'LineAsString')) SELECT * FROM t",
    "SELECT number FROM numbers(1) WHERE toString(number) NOT IN (SELECT * FROM {f}('{p}', 'LineAsString'))",
    "SELECT * FROM numbers(1) AS n, {f}('{p}', 'LineAsString') AS f",
    "DESCRIBE {f}('{p}', 'LineAsString')",
    "(SELECT 1) UNION ALL (SELECT * FROM {f}('{p}', 'LineAsString'))",
    "SELECT 1; SELECT * FROM {f}('{p}', 'LineAsString')",
]


@pytest.mark.parametrize("spelling", FILE_SPELLINGS)
@pytest.mark.parametrize("template", FILE_READS)
def test_no_spelling_of_file_reads_the_host(
    engine: ClientEngine, secret_file: Path, spelling: str, template: str
) -> None:
    seen = outcome(engine, template.format(f=spelling, p=secret_file))
    assert SECRET not in seen
    assert seen.startswith(("refused:", "failed:")), seen


def test_nothing_reads_the_owner_token_file(engine: ClientEngine, tmp_path: Path) -> None:
    owner = tmp_path / ".coex-owner.json"
    owner.write_text('{"pid": 1, "port": 1, "token": "tok-0123456789abcdef"}')
    for statement in (
        f"SELECT * FROM file('{owner}', 'JSONEachRow')",
        f"SELECT * FROM `file`('{owner}', 'RawBLOB')",
        f"SELECT file('{owner}')",
        f"SELECT * FROM Python(x) WHERE file('{owner}') != ''",
    ):
        assert "tok-0123456789abcdef" not in outcome(engine, statement)


@pytest.fixture
def loopback_service() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(SECRET.encode())

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM url('http://127.0.0.1:{port}/a', 'LineAsString')",
        "SELECT * FROM `url`('http://127.0.0.1:{port}/b', 'LineAsString')",
        "SELECT * FROM \"URL\"('http://127.0.0.1:{port}/c', 'LineAsString')",
        "SELECT * FROM urlCluster('default', 'http://127.0.0.1:{port}/d', 'LineAsString')",
        "SELECT * FROM s3('http://127.0.0.1:{port}/e/f.csv', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1:{port}', system.one)",
        "SELECT * FROM cluster('default', system.one)",
        "SELECT * FROM merge('system', '^one$')",
        "SELECT * FROM executable('cat', 'LineAsString', 'x String', (SELECT 1))",
    ],
)
def test_no_table_function_reaches_a_loopback_service(
    engine: ClientEngine, loopback_service: tuple[int, list[str]], template: str
) -> None:
    port, hits = loopback_service
    seen = outcome(engine, template.format(port=port))
    assert seen.startswith("refused:"), seen
    assert hits == [] and SECRET not in seen


@pytest.mark.parametrize("fmt", ["CSV; SELECT file('{p}')", "CSV\nSELECT file('{p}')", "CSV SETTINGS readonly = 0"])
def test_the_output_format_is_a_name_and_nothing_more(engine: ClientEngine, secret_file: Path, fmt: str) -> None:
    with pytest.raises(StatementRefused, match="not an output format name"):
        engine.query_readonly("SELECT 1", fmt.format(p=secret_file))
    with pytest.raises(StatementRefused, match="not an output format name"):
        engine.query_raw("SELECT 1", fmt.format(p=secret_file))


def test_into_outfile_writes_no_file(engine: ClientEngine, tmp_path: Path) -> None:
    for i, statement in enumerate(
        ["SELECT 1 INTO OUTFILE '{}'", "SHOW TABLES INTO OUTFILE '{}'", "EXPLAIN SELECT 1 INTO OUTFILE '{}'"]
    ):
        target = tmp_path / f"out{i}"
        assert outcome(engine, statement.format(target)).startswith("refused:")
        assert not target.exists()


@pytest.mark.parametrize(
    "clause",
    [
        "max_result_rows = 0",
        "MAX_RESULT_ROWS = 0",
        "max_result_rows = 0, result_overflow_mode = 'break'",
        "result_overflow_mode = 'break'",
        "max_execution_time = 0",
        "readonly = 0",
        "final = 1, max_result_rows = 0",
        "max_threads = 64",
    ],
)
def test_a_query_cannot_lift_the_analyst_limits(engine: ClientEngine, clause: str) -> None:
    seen = outcome(engine, f"SELECT number FROM numbers(5000) SETTINGS {clause}")
    assert seen.startswith(("refused:", "failed:")) and "4999" not in seen, seen


def test_the_row_limit_holds(engine: ClientEngine) -> None:
    assert "TOO_MANY_ROWS" in outcome(engine, "SELECT number FROM numbers(5000)")
    assert outcome(engine, "SELECT count() FROM numbers(5000)") == "5000\n"
    assert outcome(engine, "SELECT getSetting('readonly'), getSetting('max_execution_time')") == "1\t60\n"


def test_reads_with_final_as_the_contract_says(engine: ClientEngine) -> None:
    for version in (1, 2):
        engine.command(
            "INSERT INTO messages (phone_number_id, message_id, sent_at, version) "
            f"VALUES ('1065', 'wamid.twice', 1739230955, {version})"
        )
    assert outcome(engine, "SELECT count() FROM messages SETTINGS final = 1") == "1\n"
    assert outcome(engine, "SELECT count() FROM messages FINAL") == "1\n"
    assert outcome(engine, "SELECT count() FROM messages") == "2\n"  # the handle's default is unchanged
    assert outcome(engine, "SELECT version FROM messages FINAL SETTINGS final = 0") == "2\n"


@pytest.mark.parametrize(
    "statement",
    [
        "SHOW TABLES",
        "DESCRIBE TABLE messages",
        "EXISTS TABLE messages",
        "EXPLAIN SELECT 1",
        "WITH 1 AS x SELECT x",
        "SELECT count() FROM numbers(10)",
        "SELECT * FROM generateSeries(1, 3)",
        '/* c */ select `message_id` from "messages" -- c',
        "SELECT 'file(x); url(y)' AS `file`",
    ],
)
def test_reads_pass(engine: ClientEngine, statement: str) -> None:
    assert not outcome(engine, statement).startswith(("refused:", "failed:"))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO messages (message_id) VALUES ('x')",
        "insert into messages select * from messages",
        "DROP TABLE messages",
        "ALTER TABLE messages DELETE WHERE 1",
        "TRUNCATE messages",
        "SET readonly = 0",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "SYSTEM FLUSH LOGS",
        "KILL QUERY WHERE 1",
        "OPTIMIZE TABLE messages FINAL",
    ],
)
def test_writes_are_refused(engine: ClientEngine, statement: str) -> None:
    assert outcome(engine, statement).startswith("refused:")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO FUNCTION file('{p}.out', 'LineAsString') SELECT 'x'",
        "INSERT INTO messages (message_id) SELECT * FROM file('{p}', 'LineAsString')",
        "INSERT INTO messages (message_id) SELECT file('{p}')",
        "INSERT INTO messages (message_id) FROM INFILE '{p}' FORMAT LineAsString",
        "INSERT INTO messages (message_id) VALUES ('x')",
        "INSERT INTO system.one SELECT 1",
        "INSERT INTO other.messages SELECT * FROM messages",
        "DROP TABLE messages",
        "INSERT INTO messages SELECT * FROM messages; DROP TABLE messages",
    ],
)
def test_a_peer_command_is_an_insert_select_into_a_coex_table(
    engine: ClientEngine, secret_file: Path, statement: str
) -> None:
    with pytest.raises((StatementRefused, DatabaseError)):
        engine.checked_insert(statement.format(p=secret_file), WRITABLE_TABLES)
    assert engine.checked_insert(f"insert into {engine.database}.messages select * from messages", WRITABLE_TABLES)


NAMES = st.sampled_from(["file", "FILE", "File", "fIle", "url", "s3", "remote", "python", "Python", "executable"])


@st.composite
def spelled_name(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    escaped = "".join(draw(st.sampled_from([c, f"\\x{ord(c):02x}", f"\\x{ord(c):02X}"])) for c in name)
    return draw(st.sampled_from([name, f"`{name}`", f'"{name}"', f"`{escaped}`", f'"{escaped}"']))


GAPS = st.sampled_from([" ", "  ", "\n", "\t", " /* x */ ", "/**/", " -- c\n", " /* ; */ ", "\r\n"])


@st.composite
def outside_read(draw: st.DrawFn, path: str) -> str:
    gap = draw(GAPS)
    name = draw(spelled_name())
    call = f"{name}{draw(st.sampled_from(['', gap]))}('{path}'{gap},{gap}'LineAsString')"
    shape = draw(
        st.sampled_from(
            [
                "SELECT * FROM {c}",
                "SELECT {c}",
                "select{g}*{g}from{g}{c}{g}as{g}t",
                "WITH t AS (SELECT * FROM {c}) SELECT * FROM t",
                "SELECT * FROM numbers(1){g}JOIN{g}{c} AS x ON 1",
                "SELECT * FROM view(SELECT * FROM {c})",
                "SELECT (SELECT any(line) FROM {c})",
                "DESCRIBE {c}",
                "SELECT 1;{g}SELECT * FROM {c}",
            ]
        )
    )
    return draw(st.sampled_from(["", gap, "/* lead */ "])) + shape.format(c=call, g=gap)


def test_fuzzed_spellings_never_return_the_host_s_file(engine: ClientEngine, secret_file: Path) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(outside_read(str(secret_file)))
    def check(statement: str) -> None:
        assert SECRET not in outcome(engine, statement), statement

    check()


def test_a_slow_statement_holds_up_no_other(engine: ClientEngine) -> None:
    slow_result: list[str] = []
    slow = threading.Thread(target=lambda: slow_result.append(outcome(engine, slow_statement(2))))
    slow.start()
    try:
        time.sleep(1.0)  # the slow statement is running
        assert outcome(engine, "SELECT 42") == "42\n"
        assert engine.query_rows("SELECT 7") == [(7,)]
        assert slow.is_alive(), "the slow statement ended before the quick ones: nothing was shown"
    finally:
        slow.join()
    assert slow_result == ["0\n"]


def slow_statement(calls: int) -> str:
    """About 3 s a call, in one pipeline (sleep() refuses more than 3 s per call; distinct arguments
    keep ClickHouse from sharing the calls)."""
    return "SELECT " + " + ".join(f"sleep({3 - i / 100})" for i in range(calls))


@pytest.fixture
def owner(owned_engine: dict[str, str]) -> dict[str, str]:
    """The environment of commands run beside an owner process (`coex status` asks Kafka too)."""
    return {**owned_engine, "COEX_KAFKA_BOOTSTRAP": os.environ.get("COEX_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")}


def coex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COEX, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_coex_sql_through_the_owner_reads_no_file_and_no_token(owner: dict[str, str], secret_file: Path) -> None:
    engine_path = Path(owner["COEX_CLICKHOUSE_URL"].removeprefix("chdb://"))
    token = (engine_path / ".coex-owner.json").read_text().split('"token": "')[1].split('"')[0]
    for statement in (
        f"SELECT * FROM `file`('{secret_file}', 'LineAsString')",
        f"SELECT * FROM \"file\"('{secret_file}', 'LineAsString')",
        f"SELECT file('{engine_path / '.coex-owner.json'}')",
        f"SELECT * FROM `fi\\x6ce`('{engine_path / '.coex-owner.json'}', 'RawBLOB')",
        "SELECT count() FROM numbers(10) SETTINGS max_result_rows = 0",
    ):
        done = coex(owner, "sql", statement)
        assert done.returncode == 2 and done.stderr.startswith("coex sql: refused:"), (statement, done.stderr)
        assert SECRET not in done.stdout + done.stderr and token not in done.stdout + done.stderr
    for fmt in (f"CSV; SELECT file('{secret_file}')", f"CSV; SELECT * FROM file('{engine_path / '.coex-owner.json'}')"):
        done = coex(owner, "sql", "SELECT 1", "--format", fmt)
        assert done.returncode == 2 and done.stderr.startswith("coex sql: refused:"), (statement, done.stderr)
        assert SECRET not in done.stdout + done.stderr and token not in done.stdout + done.stderr
    final = coex(owner, "sql", "SELECT count() FROM messages SETTINGS final = 1", "--format", "CSV")
    assert (final.returncode, final.stdout) == (0, "1\n"), final.stderr


def test_a_slow_coex_sql_holds_up_neither_another_nor_coex_status(owner: dict[str, str]) -> None:
    argv = [COEX, "sql", slow_statement(4), "--format", "CSV"]
    slow = subprocess.Popen(argv, env=owner, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the owner runs it by now
        quick = coex(owner, "sql", "SELECT message_id FROM messages FINAL", "--format", "CSV")
        assert (quick.returncode, quick.stdout) == (0, '"wamid.owned"\n'), quick.stderr
        status = coex(owner, "status")
        assert status.returncode == 0 and "1065" in status.stdout, status.stderr
        assert slow.poll() is None, "the slow statement ended before the quick ones: nothing was shown"
    finally:
        out, _ = slow.communicate(timeout=60)
    assert (slow.returncode, out) == (0, "0\n")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("args", [("migrate",), ("sql", "SELECT 1"), ("status",)], ids=["migrate", "sql", "status"])
def test_no_command_prints_the_clickhouse_password(args: tuple[str, ...]) -> None:
    env = dict(os.environ, COEX_CLICKHOUSE_URL=f"http://analyst:s3cretpw@127.0.0.1:{closed_port()}")
    done = coex(env, *args)
    assert done.returncode != 0
    assert "s3cretpw" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "analyst:***@127.0.0.1" in done.stderr

"""Benchmark: normalized MessageRow batches into the embedded engine through the BatchWriter.

    .venv/bin/python bench/sink_insert.py [--rows 1000000] [--batch 50000] [--write-results]

Same run, same engine, same row shape, five ways:
  ceiling   INSERT ... SELECT from numbers() (no Python, no payload): what the engine can take
  writer    BatchWriter.add() + flush(): an Arrow table the engine reads in place, dedup token,
            optimize_on_insert=0
  arrow     Engine.insert_arrow() alone: the same in-place insert without token, default settings
  stream    the same table as an ArrowStream payload through Engine.insert_raw (what a server or
            the owner's endpoint gets; the writer's path before it read Arrow in place)
  native    clickhouse-connect's own column-oriented insert (Native format), for comparison
Reports sustained rows/s (all rows / all time spent in the insert path; row generation excluded),
the best single batch, and the process's peak RSS. The process runs under a worker's memory policy
(runtime.memory: bounded allocators, the collector paced for bulk imports), and each path's table is
dropped once measured, so its background merges do not run into the next path's time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from runtime.memory import bound_memory
from runtime.settings import Settings
from schemas.rows import MessageRow, message_version
from sinks.client import open_client
from sinks.connect import open_engine
from sinks.encode import FORMAT, rows_to_arrow, serialize
from sinks.engine import Engine
from sinks.migrate import apply_migrations
from sinks.writer import BatchWriter

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## ClickHouse sink (issue 5)"
DAY = 86_400
BASE_TS = 1_739_230_955


def make_batch(seed: int, n: int) -> list[MessageRow]:
    rows = []
    for i in range(n):
        k = seed * n + i
        mid = f"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz{k:012d}QkFFMkU5RjQA"
        contact = f"1650555{k % 5000:04d}"
        text = f"message {k}: see you at the usual place around {k % 24}h, bring the documents"
        raw = orjson.dumps(
            {
                "from": contact,
                "id": mid,
                "timestamp": str(BASE_TS - k % 180 * DAY),
                "type": "text",
                "text": {"body": text},
                "context": {"from": "16505551234"},
            }
        ).decode()
        rows.append(
            MessageRow(
                phone_number_id=f"10654035224{k % 3:04d}",
                waba_id="102290129340398",
                message_id=mid,
                contact_wa_id=contact,
                direction="inbound" if k % 2 else "outbound",
                source="history",
                type="text",
                text=text,
                media_id="",
                media_mime_type="",
                status="read",
                sent_at=BASE_TS - (k % 180) * DAY - k % 3600,
                history_phase=k % 3,
                history_chunk_order=k // 1000,
                raw=raw,
                context_id="",
                error_code=None,
                version=message_version(True, "read"),
            )
        )
    return rows


CEILING_SELECT = """
SELECT
    concat('10654035224', leftPad(toString(k % 3), 4, '0')), '102290129340398',
    concat('wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz', leftPad(toString(k), 12, '0'), 'QkFFMkU5RjQA'),
    concat('1650555', leftPad(toString(k % 5000), 4, '0')),
    if(k % 2, 'inbound', 'outbound'), 'history', 'text',
    concat('message ', toString(k), ': see you at the usual place around ', toString(k % 24),
           'h, bring the documents'),
    '', '', 'read',
    toDateTime({base} - (k % 180) * 86400 - k % 3600, 'UTC'), k % 3, intDiv(k, 1000),
    concat('{{"from":"1650555', leftPad(toString(k % 5000), 4, '0'), '","id":"wamid.HBgL', toString(k),
           '","timestamp":"', toString({base}), '","type":"text","text":{{"body":"message ', toString(k),
           ': see you at the usual place around 3h, bring the documents"}},"context":{{"from":"16505551234"}}}}'),
    '', NULL, 260
FROM (SELECT number + {offset} AS k FROM numbers({n}))
"""


def settle(engine: Engine, table: str) -> int:
    """The rows a path wrote; then its table goes, so its merges do not run into the next path's time."""
    count = int(engine.query_rows(f"SELECT count() FROM bench.{table}")[0][0])
    engine.command(f"DROP TABLE bench.{table} SYNC")
    return count


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--write-results", action="store_true", help=f"append figures to {RESULTS.name}")
    args = parser.parse_args()
    batches = max(1, args.rows // args.batch)
    total = batches * args.batch

    bound_memory()  # as `coex worker` does: the writer runs under the worker's policy
    with tempfile.TemporaryDirectory(prefix="coex-bench-") as tmp:
        settings = Settings(clickhouse_url=f"chdb://{tmp}/ch", clickhouse_database="bench")
        engine = open_engine(settings)
        apply_migrations(engine, "bench")
        for name in ("ceiling", "arrow", "stream", "native"):
            engine.command(f"CREATE TABLE bench.messages_{name} AS bench.messages")
        client = open_client(settings.clickhouse_url, "bench")

        spent = 0.0
        best = 0.0
        for b in range(batches):
            t0 = time.perf_counter()
            engine.command(
                "INSERT INTO bench.messages_ceiling "
                + CEILING_SELECT.format(base=BASE_TS, offset=b * args.batch, n=args.batch)
            )
            dt = time.perf_counter() - t0
            spent += dt
            best = max(best, args.batch / dt)
        ceiling = (total / spent, best)
        counts = [settle(engine, "messages_ceiling")]
        rss_before = rss_mb()

        # Warm-up, once per process, not a per-batch cost: pyarrow imports pandas on its first array
        # (~0.25 s), and the first full batch's conversion takes ~0.2 s more than the next ones.
        rows_to_arrow(MessageRow, make_batch(batches, args.batch))
        writer = BatchWriter(engine, batch_rows=args.batch, batch_age_s=3600, retry_max_s=5)
        written = asyncio.run(run_writer(writer, batches, args.batch))
        rss_writer = rss_mb()
        counts.append(settle(engine, "messages"))

        spent, best = 0.0, 0.0
        for b in range(batches):
            rows = make_batch(b, args.batch)
            t0 = time.perf_counter()
            engine.insert_arrow("messages_arrow", rows_to_arrow(MessageRow, rows))
            dt = time.perf_counter() - t0
            spent += dt
            best = max(best, args.batch / dt)
        arrow = (total / spent, best)
        counts.append(settle(engine, "messages_arrow"))

        spent, best = 0.0, 0.0
        for b in range(batches):
            rows = make_batch(b, args.batch)
            t0 = time.perf_counter()
            engine.insert_raw("messages_stream", MessageRow._fields, serialize(rows_to_arrow(MessageRow, rows)), FORMAT)
            dt = time.perf_counter() - t0
            spent += dt
            best = max(best, args.batch / dt)
        stream = (total / spent, best)
        counts.append(settle(engine, "messages_stream"))

        spent, best = 0.0, 0.0
        for b in range(batches):
            rows = make_batch(b, args.batch)
            t0 = time.perf_counter()
            client.insert(
                "messages_native",
                [list(c) for c in zip(*rows, strict=True)],
                column_names=MessageRow._fields,
                column_oriented=True,
            )
            dt = time.perf_counter() - t0
            spent += dt
            best = max(best, args.batch / dt)
        native = (total / spent, best)
        counts.append(settle(engine, "messages_native"))
        client.close()
        engine.close()
    if counts != [total] * 5:
        print(f"row counts differ: {counts}", file=sys.stderr)
        return 1

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    lines = [
        f"`.venv/bin/python bench/sink_insert.py --rows {total} --batch {args.batch}` "
        f"({time.strftime('%Y-%m-%d')}, {machine}, chdb embedded engine, shared machine)",
        "",
        "| path | sustained rows/s | best batch rows/s |",
        "| --- | ---: | ---: |",
        f"| ceiling: `INSERT ... SELECT` from `numbers()` | {ceiling[0]:,.0f} | {ceiling[1]:,.0f} |",
        f"| **BatchWriter** (Arrow read in place + dedup token, `optimize_on_insert=0`) "
        f"| **{written[0]:,.0f}** | {written[1]:,.0f} |",
        f"| `Engine.insert_arrow` alone (the writer's insert, no token, default settings) "
        f"| {arrow[0]:,.0f} | {arrow[1]:,.0f} |",
        f"| the same table as an ArrowStream payload (`Engine.insert_raw`) | {stream[0]:,.0f} | {stream[1]:,.0f} |",
        f"| clickhouse-connect column-oriented `insert` (Native) | {native[0]:,.0f} | {native[1]:,.0f} |",
        "",
        f"Peak RSS: {rss_before:,.0f} MB after the ceiling run, {rss_writer:,.0f} MB after the writer run "
        f"(includes the generated rows, {args.batch:,} per batch).",
    ]
    print("\n".join(lines))
    if args.write_results:
        write_section("\n".join(lines))
    return 0


async def run_writer(writer: BatchWriter, batches: int, batch: int) -> tuple[float, float]:
    """One event loop for every flush, as in a worker (a loop per flush would start a thread each)."""
    spent, best = 0.0, 0.0
    for b in range(batches):
        rows = make_batch(b, batch)
        t0 = time.perf_counter()
        writer.add("messages", rows)
        await writer.flush()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, batch / dt)
    return batches * batch / spent, best


def write_section(body: str) -> None:
    """Append a run under our section, creating the file or the section if missing."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    entry = f"\n{body}\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n" + entry
    else:
        start = text.index(SECTION) + len(SECTION)
        nxt = text.find("\n## ", start)
        end = len(text) if nxt < 0 else nxt
        text = text[:end].rstrip("\n") + "\n" + entry + text[end:]
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())

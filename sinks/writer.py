"""BatchWriter: rows buffered per table, written to ClickHouse in large batches, never dropped.

The stream adds rows, asks `should_flush()`, and awaits `flush()` before it commits Kafka offsets:
`flush()` returns only once every row buffered before the call is in ClickHouse, retrying with
exponential backoff while ClickHouse is down. Each insert carries an `insert_deduplication_token`
derived from one drawn per batch, so a batch retried after an ambiguous failure is written once.

A table's rows go in blocks the engine takes whatever their dates (sinks/blocks.py). A block that
ClickHouse refuses for its rows (sinks/errors.py) is halved until the refused rows are alone; the
others land and each refused row becomes a dead letter with ClickHouse's reason; so does a row that
pyarrow cannot encode (a value its column's type cannot take), found before ClickHouse is asked.
Any other failure is retried as it is; once a batch has failed for `alert_after_s`, that is logged
as an error and shown by `coex_sink_failing_seconds`.

One flush writes `messages` first, then the other tables, then `message_statuses`, then carries the
best known status into `messages` for every message touched (sinks/status_sql.py): a status that
arrived before its message is applied as soon as the message lands. The touched keys go to the
`sink_keys` scratch table so that statement joins on data rather than on a huge SQL literal; unless
the batch brings statuses itself, a cheap query first asks whether any of them has a status at all
(a history import's have none).

Rows come as row tuples (`add`) or already in Arrow (`add_encoded`: history rows the worker's
helper processes parsed, which would cost a pickle each to pass as tuples); one insert per table
takes both, in the order they came.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeAlias

import orjson
import pyarrow as pa

from schemas.rows import DeadLetterRow, StatusRow
from sinks import metrics
from sinks.blocks import partition_blocks
from sinks.encode import arrow_schema, columns_to_arrow, rows_to_arrow, rows_to_arrow_isolating
from sinks.engine import Engine
from sinks.errors import refused
from sinks.status_sql import any_status, apply_best_status
from sinks.tables import ROW_TYPES, SINK_KEYS, SinkKeyRow, columns

log = logging.getLogger(__name__)

STATUS_TABLE = "message_statuses"
DEAD_LETTERS = "dead_letters"
REFUSED_STEP = "refused rows"
FIRST_RETRY_S = 0.2
# ReplacingMergeTree collapses each inserted block by key unless told not to: a fifth of the insert
# time, for rows that FINAL and background merges collapse anyway.
INSERT_SETTINGS = {"optimize_on_insert": 0}

# A table's buffered rows in the order they came: runs of row tuples, and rows already encoded.
Segment: TypeAlias = list[tuple[Any, ...]] | pa.Table


@dataclass
class _Batch:
    """One flush's rows; kept until all of it is written, steps done are skipped on retry."""

    tables: dict[str, list[Segment]]
    # Names this batch's keys in `sink_keys` and its inserts' deduplication tokens: the same through
    # every retry of the batch, random so an identical later batch is not deduplicated.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    encoded: dict[str, pa.Table] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    refused: list[DeadLetterRow] = field(default_factory=list)  # rows ClickHouse will not take

    def key_columns(self) -> list[list[str]]:
        """`sink_keys` columns for the live messages and the statuses of this batch (their best
        status is (re)applied)."""
        pnids: list[str] = []
        mids: list[str] = []
        for table in ("messages", STATUS_TABLE):
            names = columns(table)
            pnid, mid = itemgetter(names.index("phone_number_id")), itemgetter(names.index("message_id"))
            for rows in self.tables.get(table, ()):
                if not isinstance(rows, list):
                    continue  # encoded: history rows without a media id (`add_encoded`)
                if table == "messages":
                    # Status webhooks mostly follow messages sent after onboarding (echoes, Cloud API):
                    # skipping history rows keeps a 180-day import off this join. But a media
                    # follow-up (the only history rows with a media ID: chunks carry placeholders)
                    # rewrites its message, so a status that reached the placeholder is applied again.
                    source, media = names.index("source"), names.index("media_id")
                    rows = [row for row in rows if row[source] != "history" or row[media]]
                pnids.extend(map(pnid, rows))
                mids.extend(map(mid, rows))
        return [[self.token] * len(pnids), pnids, mids]

    def count(self, table: str) -> int:
        return sum(len(rows) for rows in self.tables[table])

    @property
    def rows(self) -> int:
        return sum(self.count(table) for table in self.tables)

    def order(self) -> list[str]:
        """messages first (statuses join onto them), message_statuses last."""
        rest = sorted(t for t in self.tables if t not in ("messages", STATUS_TABLE))
        head = ["messages"] if "messages" in self.tables else []
        tail = [STATUS_TABLE] if STATUS_TABLE in self.tables else []
        return head + rest + tail


class BatchWriter:
    def __init__(
        self, engine: Engine, *, batch_rows: int, batch_age_s: float, retry_max_s: float, alert_after_s: float = 300.0
    ) -> None:
        self.engine = engine
        self.batch_rows = batch_rows
        self.batch_age_s = batch_age_s
        self.retry_max_s = retry_max_s
        self.alert_after_s = alert_after_s
        self._failing_since: float | None = None  # when the batch being retried first failed
        self._buffers: dict[str, list[Segment]] = {}
        self._buffered = 0
        self._oldest: float | None = None
        self._pending: list[_Batch] = []
        self._pending_rows = 0  # their rows: `buffered_rows` is read for every record the stream adds
        self._lock = asyncio.Lock()
        self._running: asyncio.Future[None] | None = None

    def add(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if table not in ROW_TYPES:
            raise ValueError(f"unknown table {table!r}")
        names: tuple[str, ...] = rows[0]._fields  # type: ignore[attr-defined]
        if names != columns(table):
            raise ValueError(f"{table}: rows with columns {names}, the table has {columns(table)}")
        segments = self._buffers.setdefault(table, [])
        last = segments[-1] if segments else None
        if not isinstance(last, list):
            last = []
            segments.append(last)
        last.extend(rows)
        self._buffered_more(len(rows))

    def add_encoded(self, table: str, data: pa.Table) -> None:
        """Rows already in Arrow (streams/prepare.py), with the table's row type's schema. Their keys
        are not read: only history rows without a media id may come so (see `_Batch.key_columns`)."""
        if not data.num_rows:
            return
        if table not in ROW_TYPES:
            raise ValueError(f"unknown table {table!r}")
        if not data.schema.equals(arrow_schema(ROW_TYPES[table])):
            raise ValueError(f"{table}: Arrow rows with schema {data.schema}, not the table's row type's")
        self._buffers.setdefault(table, []).append(data)
        self._buffered_more(data.num_rows)

    def _buffered_more(self, rows: int) -> None:
        self._buffered += rows
        if self._oldest is None:
            self._oldest = time.monotonic()
        metrics.BUFFERED_ROWS.set(self.buffered_rows)

    def add_statuses(self, rows: Sequence[StatusRow]) -> None:
        self.add(STATUS_TABLE, rows)

    def should_flush(self) -> bool:
        if self._buffered >= self.batch_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.batch_age_s

    @property
    def buffered_rows(self) -> int:
        return self._buffered + self._pending_rows

    @property
    def failing(self) -> bool:
        """The last write attempt failed; retrying."""
        return self._failing_since is not None

    @property
    def failing_s(self) -> float:
        """How long the batch being retried has been failing; 0 while writes pass."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def flush(self) -> None:
        async with self._lock:
            if self._buffers:
                self._pending.append(_Batch(self._buffers))
                self._pending_rows += self._buffered
                self._buffers, self._buffered, self._oldest = {}, 0, None
            while self._pending:
                await self._write_retrying(self._pending[0])
                self._pending_rows -= self._pending.pop(0).rows
                metrics.BUFFERED_ROWS.set(self.buffered_rows)

    async def _write_retrying(self, batch: _Batch) -> None:
        started = time.monotonic()
        attempt = 0
        alerted = 0.0  # failing_s when last alerted
        while True:
            if self._running is not None and not self._running.done():
                # A write left running by a cancelled flush: let it end before touching the batch again.
                await asyncio.wait([self._running])
            self._running = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
            try:
                await asyncio.shield(self._running)
            except Exception as exc:
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                failing_s = self.failing_s
                metrics.CLICKHOUSE_UP.set(0)
                metrics.FAILING_SECONDS.set(failing_s)
                metrics.RETRIES.inc()
                delay = min(self.retry_max_s, FIRST_RETRY_S * 2**attempt)
                attempt += 1
                log.warning(
                    "ClickHouse write failed (attempt %d, %d rows kept), retrying in %.1f s: %s: %s",
                    attempt,
                    batch.rows,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                if failing_s - alerted >= self.alert_after_s:
                    alerted = failing_s
                    log.error(
                        "ClickHouse writes have failed for %.0f s (COEX_SINK_ALERT_AFTER_S %.0f): %d rows wait, "
                        "nothing is committed meanwhile; last error: %s: %s",
                        failing_s,
                        self.alert_after_s,
                        batch.rows,
                        type(exc).__name__,
                        exc,
                    )
                await asyncio.sleep(delay)
                continue
            self._failing_since = None
            metrics.CLICKHOUSE_UP.set(1)
            metrics.FAILING_SECONDS.set(0)
            metrics.FLUSH_SECONDS.observe(time.monotonic() - started)
            return

    def _write(self, batch: _Batch) -> None:
        """Blocking: every step of one batch, skipping steps a previous attempt finished."""
        for table in batch.order():
            if table in batch.done:
                continue
            self._write_table(batch, table)
            batch.done.add(table)
            batch.encoded.pop(table, None)
            refused_here = sum(1 for letter in batch.refused if letter.topic == f"clickhouse:{table}")
            metrics.ROWS_WRITTEN.labels(table).inc(batch.count(table) - refused_here)
        if batch.refused and REFUSED_STEP not in batch.done:
            self._write_refused(batch)
            batch.done.add(REFUSED_STEP)
        keys = batch.key_columns()
        if keys[0] and SINK_KEYS not in batch.done:
            self._insert(SINK_KEYS, columns_to_arrow(SinkKeyRow, keys), f"coex:{SINK_KEYS}:{batch.token}")
            batch.done.add(SINK_KEYS)
        if keys[0] and "statuses applied" not in batch.done:
            # A batch with statuses has keys with a status: those, just written. Asking costs a query.
            if STATUS_TABLE in batch.tables or self._any_status(batch.token):
                self.engine.command(apply_best_status(self.engine.database, batch.token))
            batch.done.add("statuses applied")
            metrics.STATUS_KEYS.inc(len(keys[0]))

    def _any_status(self, token: str) -> bool:
        return self.engine.query_raw(any_status(self.engine.database, token), "TabSeparated").strip() != b"0"

    def _encoded(self, table: str, batch: _Batch) -> pa.Table:
        """The table's rows in Arrow, once per batch. A row pyarrow cannot encode would fail every
        attempt: it is refused (a dead letter) like a row ClickHouse refuses, the rest goes on."""
        data = batch.encoded.get(table)
        if data is None:
            row_type, names = ROW_TYPES[table], columns(table)
            parts: list[pa.Table] = []
            for rows in batch.tables[table]:
                if not isinstance(rows, list):
                    parts.append(rows)
                    continue
                encoded, poison = rows_to_arrow_isolating(row_type, rows)
                parts.append(encoded)
                self._refuse(batch, table, [(_as_dict(names, row), reason) for row, reason in poison], len(rows))
            data = batch.encoded[table] = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        return data

    def _write_table(self, batch: _Batch, table: str) -> None:
        """A table's rows in blocks the engine takes; a block written is skipped on a retry, and each
        block's token stays the same through retries (the blocks are cut the same way every time)."""
        blocks = partition_blocks(table, self._encoded(table, batch))
        for index, block in enumerate(blocks):
            step = f"{table} block {index}"
            if step in batch.done:
                continue
            rows = self._insert_isolating(table, block, f"coex:{table}:{batch.token}:{index}")
            self._refuse(batch, table, rows, block.num_rows)
            batch.done.add(step)

    @staticmethod
    def _refuse(batch: _Batch, table: str, rows: list[tuple[dict[str, Any], str]], of: int) -> None:
        """Rows of `table` that will never be written, with why: dead letters of this batch."""
        if not rows:
            return
        log.error("%d of %d rows of %s refused, sent to dead_letters instead: %s", len(rows), of, table, rows[0][1])
        metrics.ROWS_REFUSED.labels(table).inc(len(rows))
        now = time.time()
        batch.refused.extend(refused_letter(table, row, reason, now) for row, reason in rows)

    def _insert_isolating(self, table: str, data: pa.Table, token: str) -> list[tuple[dict[str, Any], str]]:
        """Inserts `data`; if ClickHouse refuses its rows, halves it until the refused rows are alone
        and inserts the rest. Returns the refused rows with ClickHouse's error. Other errors raise."""
        try:
            self._insert(table, data, token)
            return []
        except Exception as exc:
            if not refused(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"
        if data.num_rows == 1:
            return [(data.to_pylist()[0], reason)]
        half = data.num_rows // 2
        head = self._insert_isolating(table, data.slice(0, half), f"{token}.0")
        return head + self._insert_isolating(table, data.slice(half), f"{token}.1")

    def _write_refused(self, batch: _Batch) -> None:
        """The refused rows as dead letters; one that ClickHouse refuses too is logged, in full."""
        letters = rows_to_arrow(DeadLetterRow, batch.refused)
        lost = self._insert_isolating(DEAD_LETTERS, letters, f"coex:refused:{batch.token}")
        for row, reason in lost:
            log.error("ClickHouse refused a row and its dead letter; the row is not kept: %s: %s", reason, row)
        metrics.ROWS_WRITTEN.labels(DEAD_LETTERS).inc(len(batch.refused) - len(lost))

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        self.engine.insert_arrow(table, data, {**INSERT_SETTINGS, "insert_deduplication_token": token})


def _as_dict(names: tuple[str, ...], row: Sequence[Any]) -> dict[str, Any]:
    """A row tuple by column name; one of the wrong length as its values."""
    return dict(zip(names, row, strict=True)) if len(row) == len(names) else {"values": list(row)}


def refused_letter(table: str, row: dict[str, Any], reason: str, now: float) -> DeadLetterRow:
    """A dead letter of a row ClickHouse refused or pyarrow could not encode: no Kafka record to
    name, so its table stands for the topic and the row (as JSON) for the record; `item` tells
    apart the rows of one table."""
    try:
        raw = orjson.dumps(row, default=str).decode()
    except orjson.JSONEncodeError:  # an int past 64 bits, which orjson does not write
        raw = json.dumps(row, default=str)
    key = str(row.get("phone_number_id") or row.get("waba_id") or row.get("key") or "")
    return DeadLetterRow(f"clickhouse:{table}", -1, -1, key, reason, raw, now, zlib.crc32(raw.encode()))

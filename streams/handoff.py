"""What a record's output gives the ClickHouse writer, and the metrics and logs it is counted in."""

from __future__ import annotations

import logging

from schemas.rows import OFFBOARDING_EVENTS
from streams import metrics
from streams.processor import Output
from streams.sink_port import Writer

log = logging.getLogger(__name__)


def hand_to_writer(writer: Writer, out: Output, topic: str) -> None:
    """Give `out`'s rows to the ClickHouse writer, counting them; log what the record could not give."""
    for table, parts in out.encoded.items():
        for data in parts:
            writer.add_encoded(table, data)
            metrics.ROWS.labels(table).inc(data.num_rows)
    for table, rows in out.rows.items():
        writer.add(table, rows)
        metrics.ROWS.labels(table).inc(len(rows))
    if out.statuses:
        writer.add_statuses(out.statuses)
        metrics.ROWS.labels("message_statuses").inc(len(out.statuses))
    for error in out.dead_letters:
        metrics.DEAD_LETTERS.labels(topic).inc()
        log.warning("dead letter from %s: %s", topic, error)
    for pnid, gap in out.gaps:
        log.warning(
            "history gap: %s phase %s chunk_order %s had not arrived when the chunks after it were released "
            "(sync complete or COEX_HISTORY_FLUSH_TIMEOUT_S passed); released late if it comes",
            pnid,
            gap.phase,
            gap.chunk_order,
        )
    if out.gaps:
        metrics.HISTORY_GAPS.inc(len(out.gaps))
    for pnid, chunk in out.late:
        log.info("history gap filled: %s phase %s chunk_order %s came late", pnid, chunk.phase, chunk.chunk_order)
    if out.late:
        metrics.HISTORY_LATE.inc(len(out.late))
    offboarded = [r for r in out.rows.get("account_events", ()) if r.event in OFFBOARDING_EVENTS]
    if offboarded:
        metrics.OFFBOARDED.inc(len(offboarded))

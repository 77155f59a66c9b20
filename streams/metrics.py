"""Prometheus metrics of the stream worker (one set per process, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter("coex_stream_records_total", "Kafka records processed", ["topic"])
ROWS = Counter("coex_stream_rows_total", "rows handed to the ClickHouse writer", ["table"])
DEAD_LETTERS = Counter("coex_stream_dead_letters_total", "records sent to dead_letters", ["topic"])
RELEASED = Counter("coex_stream_released_total", "records published to normalized_messages", ["kind"])
HISTORY_GAPS = Counter("coex_stream_history_gaps_total", "history chunks released past before they arrived")
HISTORY_LATE = Counter("coex_stream_history_late_total", "history gaps filled: chunks that arrived after all")
OFFBOARDED = Counter("coex_stream_offboarded_total", "PARTNER_REMOVED / ACCOUNT_OFFBOARDED events")
HELD_CHUNKS = Gauge("coex_stream_held_chunks", "history chunks held for ordered release")
PENDING_RECORDS = Gauge("coex_stream_uncommitted_records", "records processed but not yet committed")
CONSUMER_LAG = Gauge("coex_stream_consumer_lag", "high watermark minus committed offset", ["topic", "partition"])
COMMIT_SECONDS = Histogram(
    "coex_stream_commit_seconds",
    "time to write a batch to ClickHouse before committing its offsets",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
REFUSED_ACKS = Counter(
    "coex_stream_refused_acks_total", "acks of records skipped by a rebalance, refused so they are read again"
)
PREPARED_AHEAD = Counter(
    "coex_stream_prepared_ahead_total", "large records parsed by the helper processes ahead of the agent"
)
HELPER_RESTARTS = Counter(
    "coex_stream_helper_restarts_total", "helper processes that failed (their records were parsed in place)"
)
STALE_SKIPPED = Counter(
    "coex_stream_stale_skipped_total",
    "records read ahead and left unprocessed when a rebalance came first (read again after it)",
)

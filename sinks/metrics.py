"""Prometheus metrics of the ClickHouse sink (served by whichever process exposes /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_WRITTEN = Counter("coex_sink_rows_written", "Rows written to ClickHouse", ["table"])
FLUSH_SECONDS = Histogram(
    "coex_sink_flush_seconds",
    "Time to write one flush (all tables), retries included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RETRIES = Counter("coex_sink_retries", "Flush attempts that failed and were retried")
CLICKHOUSE_UP = Gauge("coex_clickhouse_up", "1 when the last ClickHouse write succeeded, 0 while failing")
BUFFERED_ROWS = Gauge("coex_sink_buffered_rows", "Rows held by the writer, not yet written")
STATUS_KEYS = Counter("coex_sink_status_keys", "Messages checked for a status to carry into `messages`")
FAILING_SECONDS = Gauge(
    "coex_sink_failing_seconds", "How long the batch being written has been failing (0 while writes pass)"
)
ROWS_REFUSED = Counter("coex_sink_rows_refused", "Rows ClickHouse refused, sent to dead_letters instead", ["table"])

"""Prometheus metrics of the stream worker (one set per process, served at /metrics)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from sinks.onboarding_watch import SYNC_TYPES, Watched

RECORDS = Counter("coex_stream_records_total", "Kafka records processed", ["topic"])
ROWS = Counter("coex_stream_rows_total", "rows handed to the ClickHouse writer", ["table"])
DEAD_LETTERS = Counter("coex_stream_dead_letters_total", "records sent to dead_letters", ["topic"])
RELEASED = Counter("coex_stream_released_total", "records published to normalized_messages", ["kind"])
HISTORY_GAPS = Counter("coex_stream_history_gaps_total", "history chunks released past before they arrived")
HISTORY_LATE = Counter("coex_stream_history_late_total", "history gaps filled: chunks that arrived after all")
PURGED = Counter(
    "coex_purged_records", "records of a purged business, older than its purge, dropped (coex purge)", ["topic"]
)
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
# The 24-hour watch (sinks/onboarding_watch.py), from `onboardings` every COEX_ONBOARDING_WATCH_INTERVAL_S
# (streams/timers.py). Every worker exposes every number: alert on max by (phone_number_id).
ONBOARDING_DEADLINE = Gauge(
    "coex_onboarding_deadline_seconds",
    "seconds left to request a number's syncs (negative: passed); only while one is not requested",
    ["phone_number_id"],
)
ONBOARDING_SILENT = Gauge(
    "coex_onboarding_silent",
    "1: the sync was requested longer than COEX_ONBOARDING_SILENCE_ALERT_S ago and no webhook of it came",
    ["phone_number_id", "sync_type"],
)


class OnboardingGauges:
    """Sets the watch's gauges, and removes the series of numbers that left it (both syncs requested,
    the onboarding purged), so no stale deadline keeps an alert firing."""

    def __init__(self) -> None:
        self._deadlines: set[str] = set()
        self._silent: set[tuple[str, str]] = set()

    def update(self, watched: Iterable[Watched], now: float, silence_s: float) -> None:
        deadlines: set[str] = set()
        silent: set[tuple[str, str]] = set()
        for watch in watched:
            left = watch.deadline_left(now)
            if left is not None:
                ONBOARDING_DEADLINE.labels(watch.phone_number_id).set(left)
                deadlines.add(watch.phone_number_id)
            for sync_type in SYNC_TYPES:
                if watch.requested_at(sync_type):
                    ONBOARDING_SILENT.labels(watch.phone_number_id, sync_type).set(
                        int(watch.silent(sync_type, now, silence_s))
                    )
                    silent.add((watch.phone_number_id, sync_type))
        for pnid in self._deadlines - deadlines:
            ONBOARDING_DEADLINE.remove(pnid)
        for labels in self._silent - silent:
            ONBOARDING_SILENT.remove(*labels)
        self._deadlines, self._silent = deadlines, silent


ONBOARDING = OnboardingGauges()  # one per process, as the gauges

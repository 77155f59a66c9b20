"""When the agent commits (hands its buffered rows to ClickHouse, then acks the records they came
from): pure, so it is tested without Kafka.

A commit costs ClickHouse about the same whatever it carries: an insert per table it touches and
the status step, ~0.2 s of CPU during an import (bench/RESULTS.md). So what bounds a batch is what
it holds, rows for the writer and bytes of records kept until their ack, not how many records it
came in: a history import also brings tens of thousands of one-message media follow-ups, and
committing every thousand records made nearly every commit of an import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    records: int  # records per commit at most
    record_bytes: int  # bytes of the records a commit acks at most (they stay in memory until then)
    rows: int  # rows buffered for ClickHouse at which the writer flushes


@dataclass(frozen=True, slots=True)
class Held:
    """What the agent holds since its last commit."""

    records: int
    record_bytes: int
    rows: int  # buffered in the writer, a write still running included


def commit_due(held: Held, limits: Limits, *, writer_due: bool, writing: bool) -> bool:
    """After a record: commit now? `writer_due`: the writer asks for a flush (rows or age);
    `writing`: the previous commit's write still runs."""
    full = writer_due or held.records >= limits.records or held.record_bytes >= limits.record_bytes
    return full and may_commit_now(held, limits, writing=writing)


def may_commit_now(held: Held, limits: Limits, *, writing: bool) -> bool:
    """A commit waits for the write before it, so while that runs the agent takes the next records
    instead; it stops to wait only once it holds two batches, the bound it had when it waited at one."""
    if not writing:
        return True
    return (
        held.records >= 2 * limits.records
        or held.record_bytes >= 2 * limits.record_bytes
        or held.rows >= 2 * limits.rows
    )


# The agent has applied every record it read and none came since: the end of a burst (an import's
# last chunks, a live message) is committed this soon instead of after the batch age.
QUIET_S = 0.2


def commit_by_time(*, age_s: float, quiet_s: float | None, since_commit_s: float, max_age_s: float) -> bool:
    """On the timer, with records held: commit them? `age_s` of the oldest; `quiet_s` since the agent
    ran out of records (None while it has some); `since_commit_s` since the last commit. A quiet agent
    still commits at most twice per batch age, so a trickle of live messages comes in batches too."""
    if age_s >= max_age_s:
        return True
    return quiet_s is not None and quiet_s >= QUIET_S and since_commit_s >= max_age_s / 2

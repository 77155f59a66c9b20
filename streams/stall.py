"""Whether a worker is stuck: the watchdog's decision, pure so it is tested without Kafka, and the
probe that tells a stuck worker from one whose Kafka is away.

A worker whose stream stops taking records while records wait on its partitions and ClickHouse
takes writes is stuck in its client libraries (seen on a fresh broker: nothing handled for 12
minutes, the commit waiting for changelog batches aiokafka did not send; that cause is fixed, see
`topics.producing.track_topics`, the guard stays for the next one). Nothing is lost by leaving
(offsets commit only after their rows are written), and `coex dev`, compose or any supervisor
starts it again; staying would hold its partitions forever. An outage is not a stall: the writer
retries ClickHouse and the clients reconnect to Kafka by design, and a restart would not help, so
the time either is away does not count, nor the time the consumer takes to find its group again
once Kafka is back (a coordinator to look up, a session that expired meanwhile, a rejoin). ClickHouse
failing counts again once it is an alert (COEX_SINK_ALERT_AFTER_S): a write that fails that long is
no outage waited out but a worker that should try afresh.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiokafka.errors import KafkaError

# A rebalance or a changelog recovery holds the stream by design: allowed this many timeouts.
IN_TRANSITION_FACTOR = 3


def sink_excuses(failing_s: float, alert_after_s: float) -> bool:
    """Whether ClickHouse failing for `failing_s` excuses a stream that handles nothing: an outage is
    waited out, but not forever. Past `alert_after_s` (an alert already) the stall timeout runs
    again, and a worker that still writes nothing leaves to be started again with fresh clients."""
    return 0 < failing_s < alert_after_s


def stalled(*, idle_s: float, timeout_s: float, waiting: bool, sink_failing: bool, in_transition: bool) -> bool:
    """`idle_s` since a record was last handled; `timeout_s` 0 turns the watchdog off."""
    limit = timeout_s * (IN_TRANSITION_FACTOR if in_transition else 1)
    return timeout_s > 0 and waiting and not sink_failing and idle_s >= limit


class Verdict(Enum):
    FINE = "fine"
    PROBE = "probe"  # idle past the limit: ask Kafka whether it is there
    AWAY = "away"  # Kafka does not answer: an outage, waited out
    BACK = "back"  # Kafka answers again after an outage: a whole timeout to resume
    STUCK = "stuck"  # Kafka answers and nothing moves: exit to be started again


@dataclass
class Watch:
    """The watchdog's memory between checks: since when the stream has had no excuse for handling no
    record. Handling a record, ClickHouse failing, Kafka away or back, and the end of a transition
    (the start, a rebalance, a rejoin) each give it a whole timeout from then."""

    idle_since: float
    in_transition: bool = True  # a worker starts by joining its group and recovering its tables
    kafka_away: bool = False
    probing_from: float | None = None  # idle_since when the probe was asked for

    def check(self, now: float, *, timeout_s: float, waiting: bool, sink_failing: bool, in_transition: bool) -> Verdict:
        if (self.in_transition and not in_transition) or sink_failing:
            self.idle_since = now
        self.in_transition = in_transition
        idle_s = now - self.idle_since
        probe = stalled(
            idle_s=idle_s, timeout_s=timeout_s, waiting=waiting, sink_failing=sink_failing, in_transition=in_transition
        )
        self.probing_from = self.idle_since if probe else None
        return Verdict.PROBE if probe else Verdict.FINE

    def probed(self, now: float, *, answered: bool) -> Verdict:
        """After `check` said PROBE: what Kafka's answer (or its absence) means."""
        if self.idle_since != self.probing_from:
            return Verdict.FINE  # a record was handled while the probe waited
        if not answered:
            self.kafka_away, self.idle_since = True, now
            return Verdict.AWAY
        if self.kafka_away:
            self.kafka_away, self.idle_since = False, now
            return Verdict.BACK
        return Verdict.STUCK


def await_chain(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: `file:line function` of each coroutine it awaits, outermost first."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


async def kafka_answers(client: Any, timeout_s: float) -> bool:
    """Whether the cluster answers a metadata request through `client` (an AIOKafkaClient)."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True

"""A whole simulation: several businesses interleaved, some webhooks sent again, the end state.

Deliveries are produced lazily, so memory stays flat whatever `messages` is; `generate()` is the
eager form for tests.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

from coex.simulator.business import Business
from coex.simulator.expected import Expected
from coex.simulator.users import HIDDEN_SHARE, SWITCH_SHARE

REDELIVERY_SHARE = 0.10  # the platform sends again what it thinks failed
REDELIVERY_MAX_DELAY = 25  # deliveries between an original and its repeat


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    messages: int  # new messages in it (0 for a redelivery)
    redelivery: bool


@dataclass(frozen=True, slots=True)
class Scenario:
    deliveries: list[bytes]  # in delivery order, redeliveries included
    expected: Expected


class Simulation:
    """Plans every business up front (cheap), then builds bodies one at a time in `deliveries()`.

    Business 1 declines history sharing, business 2 disconnects at the end (PARTNER_REMOVED),
    business 3 is offboarded (ACCOUNT_OFFBOARDED); the others sync normally. In each, a share of
    users hide their number (`hidden_share`) and a share hide it from mid-history on
    (`switch_share`); see `coex.simulator.users`.
    """

    def __init__(
        self,
        businesses: int,
        messages: int,
        seed: int = 1,
        *,
        detail: bool = False,
        hidden_share: float = HIDDEN_SHARE,
        switch_share: float = SWITCH_SHARE,
        ids: tuple[str, str] | None = None,
    ) -> None:
        """`ids`: (waba_id, phone_number_id) of the one business to play, which syncs normally."""
        if ids is not None and businesses != 1:
            raise ValueError("a business's ids are given for one business only")
        if businesses < 1 or messages < 0:
            raise ValueError("need at least one business and a non-negative message count")
        if hidden_share < 0 or switch_share < 0 or hidden_share + switch_share > 1:
            raise ValueError("the shares of users hiding their number must be fractions summing to at most 1")
        self.businesses = [
            Business(
                seed,
                i,
                messages,
                declines=i == 1,
                partner_removed=i == 2,
                offboards=i == 3,
                detail=detail,
                hidden_share=hidden_share,
                switch_share=switch_share,
                ids=ids,
            )
            for i in range(businesses)
        ]
        rng = Random(f"{seed}:merge")
        # A uniform shuffle of business labels interleaves the businesses and keeps each one's order.
        self.order = [b for b, biz in enumerate(self.businesses) for _ in biz.events]
        rng.shuffle(self.order)
        self.repeats: dict[int, list[int]] = {}
        for i in range(len(self.order)):
            if rng.random() < REDELIVERY_SHARE:
                roll = rng.random()
                times = 1 if roll < 0.7 else 2 if roll < 0.95 else 3
                self.repeats[i] = [rng.randint(1, REDELIVERY_MAX_DELAY) for _ in range(times)]
        redeliveries = sum(len(r) for r in self.repeats.values())
        self.total = len(self.order) + redeliveries
        self.expected = Expected(
            {b.phone_number_id: b.expected for b in self.businesses},
            webhooks=self.total,
            redeliveries=redeliveries,
        )
        self.finished = False

    @property
    def total_messages(self) -> int:
        return sum(e.messages for b in self.businesses for e in b.events)

    def deliveries(self) -> Iterator[Delivery]:
        """Every delivery in order. `expected` is complete once this is exhausted."""
        cursors = [0] * len(self.businesses)
        pending: list[tuple[int, int, bytes]] = []  # (due position, tie-break, body)
        tie = 0
        for position, b in enumerate(self.order):
            while pending and pending[0][0] <= position:
                yield self._count(Delivery(heapq.heappop(pending)[2], 0, True))
            business = self.businesses[b]
            event = business.events[cursors[b]]
            cursors[b] += 1
            body = business.body(event)
            yield self._count(Delivery(body, event.messages, False))
            for delay in self.repeats.get(position, ()):
                heapq.heappush(pending, (position + delay, tie, body))
                tie += 1
        while pending:
            yield self._count(Delivery(heapq.heappop(pending)[2], 0, True))
        self.expected.messages = sum(b.expected.message_count for b in self.businesses)
        self.finished = True

    def _count(self, delivery: Delivery) -> Delivery:
        self.expected.bytes += len(delivery.body)
        return delivery


def generate(
    businesses: int,
    messages: int,
    seed: int = 1,
    *,
    hidden_share: float = HIDDEN_SHARE,
    switch_share: float = SWITCH_SHARE,
) -> Scenario:
    """Every delivery of a simulation in memory, with per-message expectations (for tests)."""
    sim = Simulation(businesses, messages, seed, detail=True, hidden_share=hidden_share, switch_share=switch_share)
    deliveries = [d.body for d in sim.deliveries()]
    return Scenario(deliveries, sim.expected)

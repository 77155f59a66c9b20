"""How long to wait before the next try of a Graph call: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential bound) spreads the retries of many
onboardings hitting one rate limit instead of bringing them back together. An answer's Retry-After
wins over the draw: the platform said when.
"""

from __future__ import annotations

import random

BASE_S = 0.5
CAP_S = 30.0


def backoff(attempt: int, rng: random.Random, *, base_s: float = BASE_S, cap_s: float = CAP_S) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
    bound = min(cap_s, base_s * 2 ** min(attempt - 1, 32))
    return rng.uniform(0.0, bound)


def next_delay(attempt: int, rng: random.Random, retry_after_s: float | None) -> float:
    return retry_after_s if retry_after_s is not None else backoff(attempt, rng)

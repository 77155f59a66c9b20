"""Logging shared by the commands: repeated warnings and errors are let through once per window.

While Kafka is away, aiokafka logs the same connection error in a tight loop (thousands of lines a
second, gigabytes over an outage). The first occurrence of a message goes out; the same message
(logger, level and text) again within the window is counted, and its next appearance after the
window says how many were held back. Debug and info records always pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

WINDOW_S = 10.0
MAX_KEYS = 1000  # distinct messages remembered; older ones are forgotten past that


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (first let through, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} (and {seen[1]} times more in the {now - seen[0]:.0f} s before)"
            record.args = ()  # not None: mode's formatter would make that (None,) and fail on the text
        if len(self._seen) >= MAX_KEYS:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        self._seen[key] = (now, 0)
        return True


def hold_back_repeats() -> None:
    """Put the filter on the root logger's handlers (after whoever configured them)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())

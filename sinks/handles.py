"""A bounded pool of engine handles, so reads run side by side.

A chdb handle (and a clickhouse-connect client) runs one call at a time: one slow query on a shared
handle holds up every other caller. A pool lends each caller a handle of its own, opened on first
need and kept for the next, at most `size` at once; a caller beyond that waits for one back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class HandlePool(Generic[T]):
    def __init__(self, open_handle: Callable[[], T], size: int) -> None:
        if size < 1:
            raise ValueError("a handle pool needs room for one handle")
        self._open = open_handle
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[T] = []
        self._opened: list[T] = []

    @contextlib.contextmanager
    def take(self) -> Iterator[T]:
        with self._slots:
            with self._lock:
                handle = self._idle.pop() if self._idle else None
            if handle is None:
                handle = self._open()
                with self._lock:
                    self._opened.append(handle)
            try:
                yield handle
            finally:
                with self._lock:
                    self._idle.append(handle)

    def drain(self) -> list[T]:
        """Every handle opened so far, forgotten by the pool (for the caller to close)."""
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        return opened

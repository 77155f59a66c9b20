"""Test doubles shared by unit and integration tests."""

from __future__ import annotations

from collections.abc import Iterable

from streams.processor import TABLES, Write


class DictStore:
    """A StateStore in a dict, applying writes itself: the processor's store in tests."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, bytes]] = {name: {} for name in TABLES}

    def get(self, table: str, key: str) -> bytes | None:
        return self.tables[table].get(key)

    def items(self, table: str) -> Iterable[tuple[str, bytes]]:
        return list(self.tables[table].items())

    def apply(self, writes: Iterable[Write]) -> None:
        for w in writes:
            if w.value is None:
                self.tables[w.table].pop(w.key, None)
            else:
                self.tables[w.table][w.key] = w.value

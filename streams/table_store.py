"""The processor's state store over faust tables, with the writes of uncommitted records held back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import EventT, TableT

from streams.changelog import ChangelogRecord
from streams.processor import Write


class TableStore:
    """The processor's StateStore over faust tables (values are bytes, keys are strings).

    Writes of the records not yet committed wait in an overlay that reads see first; `commit()`
    applies them to the tables (their changelogs) once what those records published to Kafka is
    confirmed. So no record waits for a Kafka round trip of its own, and state never gets ahead of
    what was published: after a crash the replay finds the old state and publishes again.
    """

    def __init__(self, tables: dict[str, TableT[str, bytes]]) -> None:
        self.tables = tables
        # (table, key) -> (partition of the record that wrote it, value): a key's last write only.
        self._overlay: dict[tuple[str, str], tuple[int, bytes | None]] = {}

    def _store(self, table: str) -> Any:
        # The table's own store: the table runs sensors on every read and sends a changelog
        # record on every write.
        return self.tables[table].data

    def get(self, table: str, key: str) -> bytes | None:
        written = self._overlay.get((table, key))
        if written is not None:
            return written[1]
        value: bytes | None = self._store(table).get(key)
        return value

    def items(self, table: str) -> list[tuple[str, bytes]]:
        merged = dict(self._store(table).items())
        for (name, key), (_, value) in self._overlay.items():
            if name != table:
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return list(merged.items())

    def defer(self, event: EventT[bytes], writes: Sequence[Write]) -> None:
        for w in writes:
            self._overlay[(w.table, w.key)] = (event.message.partition, w.value)

    def commit(self) -> dict[tuple[str, int], list[ChangelogRecord]]:
        """Apply the deferred writes to the tables; return their changelog records to send, by
        changelog topic and partition (a key's changelog is on the partition of the record that
        wrote it). Only each key's last write of the batch counts: a media placeholder and its
        follow-up in one batch cost no changelog record at all."""
        changelog: dict[tuple[str, int], list[ChangelogRecord]] = {}
        for (name, key), (partition, value) in self._overlay.items():
            store = self._store(name)
            if value is None:
                if key not in store:
                    continue
                del store[key]
            else:
                store[key] = value
            table: Any = self.tables[name]  # its serializers are not in TableT
            topic = table.changelog_topic
            raw_key, _ = topic.prepare_key(key, table.key_serializer, None)
            changelog.setdefault((topic.get_topic_name(), partition), []).append((raw_key, value))
        self._overlay.clear()
        return changelog

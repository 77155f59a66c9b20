"""What the stream worker needs of the ClickHouse writer (`sinks.writer.BatchWriter`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import pyarrow as pa

from schemas.rows import StatusRow


class Writer(Protocol):
    """What the agent needs of `sinks.writer.BatchWriter`."""

    @property
    def buffered_rows(self) -> int: ...

    def add(self, table: str, rows: Sequence[NamedTuple]) -> None: ...

    def add_encoded(self, table: str, data: pa.Table) -> None: ...

    def add_statuses(self, rows: Sequence[StatusRow]) -> None: ...

    def should_flush(self) -> bool: ...

    async def flush(self) -> None: ...

    @property
    def failing(self) -> bool:
        """The last write failed and is being retried."""
        ...

    @property
    def failing_s(self) -> float:
        """How long the batch being retried has been failing; 0 while writes pass."""
        ...

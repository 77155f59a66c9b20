"""A table's rows cut into insert blocks that the engine takes whatever their dates.

ClickHouse refuses an insert block spanning more than `max_partitions_per_insert_block` (100)
partitions (code 252): a worker's batch of webhook errors over 120 months would never land. Each
partitioned table's rows go in blocks of at most `MAX_PARTITIONS` of its partitions; a batch
within fewer (nearly all) stays one block, told from the time column's extremes alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

MAX_PARTITIONS = 100  # the engine's default max_partitions_per_insert_block
# DateTime('UTC') saturates to this range on insert, so partitions are read from the clamped value.
_DATETIME_MAX = 2**32 - 1
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class PartitionKey:
    """`PARTITION BY toYYYYMM(column)` ("month") or `toYYYYMMDD(column)` ("day"), sinks/migrations.py."""

    column: str
    unit: str
    shortest_s: int  # the shortest partition: a span shorter than MAX_PARTITIONS - 2 of them fits


# messages and dead_letters have one partition since migration 5.
PARTITION_KEYS: dict[str, PartitionKey] = {
    "webhook_errors": PartitionKey("occurred_at", "month", 28 * _DAY_S),
}


def partition_blocks(table: str, data: pa.Table, limit: int = MAX_PARTITIONS) -> list[pa.Table]:
    """`data` as blocks of at most `limit` partitions of `table`, rows in their order within each."""
    key = PARTITION_KEYS.get(table)
    if key is None or data.num_rows == 0:
        return [data]
    seconds = pc.min_max(_seconds(data[key.column]))
    low, high = seconds["min"].as_py(), seconds["max"].as_py()
    if high - low < (limit - 2) * key.shortest_s:
        return [data]
    ids = pc.floor_temporal(pc.cast(_seconds(data[key.column]), pa.timestamp("s")), unit=key.unit)
    partitions = pc.unique(ids).sort()
    if len(partitions) <= limit:
        return [data]
    return [
        data.filter(pc.is_in(ids, value_set=partitions[start : start + limit]))
        for start in range(0, len(partitions), limit)
    ]


def _seconds(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Unix seconds as the engine stores them (floats truncated, clamped to DateTime's range)."""
    whole = pc.cast(column, pa.int64(), safe=False)
    return pc.min_element_wise(pc.max_element_wise(whole, 0), _DATETIME_MAX)

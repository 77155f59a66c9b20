"""Insert blocks of at most the engine's partitions per insert, whatever the dates (sinks/blocks.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import WebhookErrorRow
from sinks.blocks import MAX_PARTITIONS, partition_blocks
from sinks.encode import rows_to_arrow

DATETIME_MAX = 2**32 - 1


def error(i: int, occurred_at: int) -> WebhookErrorRow:
    return WebhookErrorRow("p", "w", "messages", f"m{i}", 131060, "t", "m", "d", occurred_at, "{}")


def month(occurred_at: int) -> tuple[int, int]:
    at = datetime.fromtimestamp(min(max(occurred_at, 0), DATETIME_MAX), UTC)  # the engine saturates DateTime
    return at.year, at.month


def test_a_batch_within_few_months_is_one_block_as_it_came() -> None:
    data = rows_to_arrow(WebhookErrorRow, [error(i, 1_739_230_000 - i * 3600) for i in range(5000)])
    assert partition_blocks("webhook_errors", data) == [data]


def test_120_months_are_two_blocks_of_at_most_100() -> None:
    stamps = [int(datetime(1990 + m // 12, m % 12 + 1, 15, tzinfo=UTC).timestamp()) for m in range(120)]
    blocks = partition_blocks(
        "webhook_errors", rows_to_arrow(WebhookErrorRow, [error(i, ts) for i, ts in enumerate(stamps)])
    )
    assert [block.num_rows for block in blocks] == [100, 20]


def test_a_table_without_partitions_is_one_block() -> None:
    data = rows_to_arrow(WebhookErrorRow, [error(i, i * 40 * 86400) for i in range(300)])
    assert partition_blocks("contacts", data) == [data]


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=400), st.integers(1, MAX_PARTITIONS))
def test_every_row_lands_in_one_block_of_at_most_the_limit_in_its_order(stamps: list[int], limit: int) -> None:
    data = rows_to_arrow(WebhookErrorRow, [error(i, ts) for i, ts in enumerate(stamps)])
    blocks = partition_blocks("webhook_errors", data, limit)
    ids: list[int] = []
    for block in blocks:
        ids.extend(int(mid[1:]) for mid in block["message_id"].to_pylist())
        assert len({month(ts) for ts in block["occurred_at"].to_pylist()}) <= limit
        assert [int(mid[1:]) for mid in block["message_id"].to_pylist()] == sorted(
            int(mid[1:]) for mid in block["message_id"].to_pylist()
        )
    assert sorted(ids) == list(range(len(stamps)))

"""Lag per business (coex/lag.py): the partition a key goes to, records waiting per partition."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from coex.lag import business_lag, lag_by_partition, partition_of


@given(st.text(min_size=1, max_size=30), st.integers(1, 64))
def test_a_key_goes_where_the_ingests_producer_puts_it(key: str, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key.encode(), every, every)


def test_lag_sums_the_topics_of_each_partition_and_counts_never_committed_ones_whole() -> None:
    ends = {TopicPartition("history", 0): 10, TopicPartition("messages", 0): 5, TopicPartition("history", 1): 4}
    committed = {TopicPartition("history", 0): 7, TopicPartition("messages", 0): 5}
    lag = lag_by_partition(ends, committed)
    assert lag == {0: 3, 1: 4}
    assert business_lag("anything", {}) == 0
    assert business_lag("111", lag) == lag[partition_of("111", 2)]

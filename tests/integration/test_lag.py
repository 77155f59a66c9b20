"""`coex status` lag per business (coex/lag.py) from the real broker's offsets."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from coex.lag import fetch_lag, partition_of
from runtime.settings import Settings
from topics.catalog import ensure_topics


async def test_lag_counts_what_the_worker_group_has_not_committed(
    kafka_bootstrap: str, unique: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("lag")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"{name}.",
        topic_partitions=3,
        worker_group=f"{name}-group",
    )
    await ensure_topics(settings)
    history = settings.topic("history")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(3):
            await producer.send_and_wait(history, b"{}", key=b"111")
    finally:
        await producer.stop()
    mine = partition_of("111", 3)
    assert await fetch_lag(settings) == {p: 3 if p == mine else 0 for p in range(3)}

    # No auto-commit: on stop it would commit the position the consumer reset to (the end), not ours.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=settings.worker_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(history, mine)])
        await consumer.commit({TopicPartition(history, mine): OffsetAndMetadata(2, "")})
    finally:
        await consumer.stop()
    assert await fetch_lag(settings) == {p: 1 if p == mine else 0 for p in range(3)}

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        nobody = Settings(_env_file=None, kafka_bootstrap=f"127.0.0.1:{s.getsockname()[1]}")  # type: ignore[call-arg]
    caplog.clear()
    assert await fetch_lag(nobody) is None
    # Kafka away is the answer, not an error for `coex status` to print above its lines.
    assert not [r for r in caplog.records if r.name.startswith("aiokafka") and r.levelno >= logging.ERROR]

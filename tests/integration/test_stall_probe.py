"""The watchdog's Kafka probes (streams/stall.py) against the real broker and against none."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from streams.patches import group_settled
from streams.stall import kafka_answers


async def test_the_probe_tells_a_broker_that_answers_from_none(kafka_bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        assert await kafka_answers(producer.client, timeout_s=10)
    finally:
        await producer.stop()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    client = AIOKafkaClient(bootstrap_servers=dead)
    try:
        assert not await kafka_answers(client, timeout_s=10)
    finally:
        await client.close()


async def test_a_consumer_is_settled_in_its_group_once_it_has_joined(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("settle-")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"{topic}-group")
    assert not group_settled(consumer)  # not started: no coordinator yet
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200)
        assert consumer.assignment()
        assert group_settled(consumer)
        consumer._coordinator.request_rejoin()  # what a session that expired during an outage leaves
        assert not group_settled(consumer)
    finally:
        await consumer.stop()
    assert not group_settled(None)

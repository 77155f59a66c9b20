"""The watchdog's Kafka probe (streams/stall.py) against the real broker and against none."""

from __future__ import annotations

import socket

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

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

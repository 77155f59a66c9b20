"""The ground under everything: a real broker and a real embedded ClickHouse answer."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sinks.client import open_client


async def test_produce_and_consume_through_the_real_broker(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("smoke-")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b'{"hello":"kafka"}', key=b"106540352242922")
    finally:
        await producer.stop()
    assert meta.offset == 0
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    records = [r for rs in batch.values() for r in rs]
    assert [(r.key, r.value) for r in records] == [(b"106540352242922", b'{"hello":"kafka"}')]


def test_write_and_read_a_row_in_embedded_clickhouse(clickhouse_url: str, ch_database: str) -> None:
    client = open_client(clickhouse_url, database=ch_database)
    try:
        client.command("CREATE TABLE smoke (id String, at DateTime('UTC')) ENGINE = MergeTree ORDER BY id")
        client.insert("smoke", [("wamid.1", 1739230955)], column_names=["id", "at"])
        rows = client.query("SELECT id, toUnixTimestamp(at) FROM smoke").result_rows
    finally:
        client.close()
    assert rows == [("wamid.1", 1739230955)]

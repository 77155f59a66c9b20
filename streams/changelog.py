"""Table changelog records sent in batches, one producer batch per changelog partition.

faust sends a table's changelog one record at a time: `table[key] = value` queues a future message
in its producer buffer, which a task then hands to aiokafka one by one (~150 us of Python and event
loop per key). A commit here writes hundreds of keys at once (media join state above all), so it
sets the values in the tables' stores directly and writes the changelog records itself, the same
bytes faust would write (keys through the table's serializer, values raw), through aiokafka's batch API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from topics.producing import track_topics

ChangelogRecord = tuple[bytes, bytes | None]  # key, value (None deletes the key on recovery)


async def send_batches(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Iterable[ChangelogRecord]
) -> list[asyncio.Future[object]]:
    """Queue the records on one partition in as few batches as they fit; the futures resolve when
    the broker has them."""
    await track_topics(producer, (topic,))
    sent: list[asyncio.Future[object]] = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            # Full: send it and start another; a batch always takes its first record, whatever its size.
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    if batch.record_count():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent

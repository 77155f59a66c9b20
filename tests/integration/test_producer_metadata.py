"""A producer's metadata on the topics it writes (ingest/topics.py `track_topics`, used by the ingest's
publisher and the worker's changelog and output sends) against the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.changelog import send_batches
from topics.producing import track_topics


async def test_a_batch_reaches_a_topic_the_producer_knew_only_from_a_fetch_of_all_topics(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    learnt, other = new_topic("learnt-"), new_topic("other-")
    # The batch lingers long enough for a refresh to run before it goes; a batch that cannot go
    # fails after request_timeout_ms instead of the 20 minutes a worker waited.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1000, request_timeout_ms=5000)
    await producer.start()
    try:
        # Tracking no topic yet, the client fetches them all, as after faust created its topics.
        await producer.client.force_metadata_update()
        assert producer.client.cluster.partitions_for_topic(learnt)
        sent = await send_batches(producer, learnt, 0, [(b"key", b"value")])
        # A refresh for another topic: it dropped `learnt` from the metadata when it was untracked.
        await producer.client.add_topic(other)
        await asyncio.wait_for(asyncio.gather(*sent), timeout=15)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(learnt, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await consumer.getmany(tp, timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [(r.key, r.value) for r in got[tp]] == [(b"key", b"value")]


async def test_tracked_topics_stay_in_the_metadata_when_another_topic_is_refreshed(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    tracked, untracked, other = new_topic("tracked-"), new_topic("untracked-"), new_topic("other-")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.client.force_metadata_update()  # tracking none: every topic's metadata
        await track_topics(producer, [tracked])
        await producer.client.add_topic(other)
        await producer.client.force_metadata_update()
        assert producer.client.cluster.partitions_for_topic(tracked) == {0}
        # What tracking is for: aiokafka forgets a topic it does not track once it tracks others.
        assert producer.client.cluster.partitions_for_topic(untracked) is None
    finally:
        await producer.stop()

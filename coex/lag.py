"""How far the workers are behind, per business: the records waiting on its partition.

The ingest keys every record by phone_number_id (the WABA id where a change has none), so a
business's records sit on one partition of each ingest topic (Kafka's default partitioner); its
lag is that partition's end offset minus the workers' committed offset, summed over the topics.
Businesses sharing a partition share its lag: it says how much is still to be processed before
their rows are complete, not whose records those are.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import OffsetAndMetadata

from runtime.settings import Settings
from topics.catalog import INGEST_TOPICS

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives this key (as the ingest's producer does)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def lag_by_partition(ends: dict[TopicPartition, int], committed: dict[TopicPartition, int]) -> dict[int, int]:
    """Records waiting per partition number, over every topic (a partition never committed waits whole)."""
    lag: dict[int, int] = {}
    for tp, end in ends.items():
        lag[tp.partition] = lag.get(tp.partition, 0) + max(end - committed.get(tp, 0), 0)
    return lag


def business_lag(key: str, lag: dict[int, int]) -> int:
    """The lag of the partition `key` (a phone_number_id, or a WABA id) is on."""
    return lag.get(partition_of(key, len(lag)), 0) if lag else 0


async def fetch_lag(settings: Settings) -> dict[int, int] | None:
    """Records waiting per partition number for the worker group; None if Kafka does not answer."""
    # Kafka away is this function's answer (None), not news: aiokafka logs each failed connection as
    # an error, which `coex status` and `coex dev` would print above their own lines.
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            return await _fetch(settings)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.debug("no lag: Kafka at %s does not answer (%r)", settings.kafka_bootstrap, exc)
        return None
    finally:
        kafka_log.setLevel(level)


async def _fetch(settings: Settings) -> dict[int, int]:
    topics = [settings.topic(field) for field in INGEST_TOPICS]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-lag")
    try:  # both stopped also when a start failed: an unclosed client warns when collected
        await consumer.start()
        await admin.start()
        partitions = [
            TopicPartition(str(found["topic"]), int(p["partition"]))
            for found in await admin.describe_topics(topics)
            for p in found["partitions"]  # none for a topic not created yet
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        offsets = await _group_offsets(admin, settings.worker_group)
    finally:
        await admin.close()
        await consumer.stop()
    committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    return lag_by_partition(ends, committed)


async def _group_offsets(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
    # A broker that has never seen a group creates its offsets topic on this first question and
    # answers "no coordinator" meanwhile; the caller's timeout bounds the wait.
    while True:
        try:
            offsets: dict[TopicPartition, OffsetAndMetadata] = await admin.list_consumer_group_offsets(group)
            return offsets
        except GroupCoordinatorNotAvailableError:
            await asyncio.sleep(0.2)

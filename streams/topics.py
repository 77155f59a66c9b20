"""The worker's own topic besides faust's changelogs (`stream_ticks`, co-partitioned with the ingest
topics), and the codec of everything the worker produces."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_snappy
from aiokafka.errors import TopicAlreadyExistsError, for_code

from coex.settings import Settings
from ingest.publisher import pick_compression

TICKS = "stream_ticks"


def pick_worker_compression() -> str:
    """snappy when aiokafka has a codec for it, else the ingest's choice.

    The worker sends the JSON of every message it releases and the held chunks' changelog, which is
    lz4 already. aiokafka compresses zstd at level 3, which it does not let us lower: ~250 MB/s on
    the held chunks, and the worker's busiest thread spent ~2 s per million messages in it; snappy
    runs at 1.3-5 GB/s for half zstd's ratio on the JSON (bench/RESULTS.md)."""
    return "snappy" if has_snappy() else pick_compression()


async def ensure_tick_topic(settings: Settings) -> bool:
    """Create `<prefix>stream_ticks` if missing (short retention: ticks are worthless once read)."""
    name = settings.topic(TICKS)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-worker-topics")
    await admin.start()
    try:
        if name in set(await admin.list_topics()):
            return False
        topic = NewTopic(
            name, settings.topic_partitions, settings.topic_replication, topic_configs={"retention.ms": "3600000"}
        )
        response = await admin.create_topics([topic])
    finally:
        await admin.close()
    for _, code, *_ in response.topic_errors:
        error = for_code(code)
        if code != 0 and error is not TopicAlreadyExistsError:
            raise error(f"creating topic {name}")
    return True

"""The worker's own topic besides faust's changelogs: `stream_ticks`, co-partitioned with the ingest topics."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from coex.settings import Settings

TICKS = "stream_ticks"


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

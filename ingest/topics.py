"""Creating the Kafka topics the ingest writes (and `normalized_messages`); auto-create is off. And
keeping a producer's metadata on the topics it writes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from coex.settings import Settings
from schemas.routing import INGEST_TOPICS

log = logging.getLogger(__name__)

# A history change can be 16 MB; leave room for the wrapper and the batch overhead.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
NORMALIZED_MESSAGES = "normalized_messages"


def topic_names(settings: Settings) -> list[str]:
    return [settings.topic(field) for field in (*INGEST_TOPICS, NORMALIZED_MESSAGES)]


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
        "retention.ms": str(settings.topic_retention_ms),
        # Keep the producer's own batches as written: no recompression on the broker.
        "compression.type": "producer",
    }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every ingest topic and `normalized_messages` that is missing; return those created
    (the caller says so: `coex migrate` in its summary, the services through `log_created`).

    Idempotent, and safe against another process creating the same topics at the same time.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = topic_names(settings)
        missing = [name for name in names if name not in existing]
        present = [name for name in names if name in existing]
        if present:
            _warn_other_partition_counts(await admin.describe_topics(present), settings.topic_partitions)
        if not missing:
            return []
        configs = topic_configs(settings)
        response = await admin.create_topics(
            [
                NewTopic(name, settings.topic_partitions, settings.topic_replication, topic_configs=configs)
                for name in missing
            ]
        )
    finally:
        await admin.close()
    created: list[str] = []
    for name, code, *rest in response.topic_errors:
        error = for_code(code)
        if code == 0:
            created.append(name)
        elif error is not TopicAlreadyExistsError:
            message = rest[0] if rest else ""
            raise error(f"creating topic {name}: {message or error.__name__}")
    return created


def log_created(created: list[str]) -> None:
    if created:
        log.info("created Kafka topics %s", ", ".join(sorted(created)))


def _warn_other_partition_counts(described: list[dict[str, Any]], wanted: int) -> None:
    # A topic created a moment ago may be described without its partitions yet: not a mismatch.
    other = {str(t["topic"]): len(t["partitions"]) for t in described if len(t["partitions"]) not in (0, wanted)}
    if other:
        log.warning(
            "topics %s keep the partitions they have, not COEX_TOPIC_PARTITIONS=%d: adding partitions would "
            "move businesses between partitions mid-sync (deploy/OPERATIONS.md, 'Topics and partitions', "
            "says how to change the count with a new COEX_TOPIC_PREFIX)",
            ", ".join(f"{name} ({count})" for name, count in sorted(other.items())),
            wanted,
        )


async def track_topics(producer: AIOKafkaProducer, topics: Iterable[str]) -> None:
    """Have the producer's metadata refreshes include these topics from now on.

    aiokafka refreshes metadata only for the topics it tracks, and a send tracks its topic only when
    the metadata lacks it. A topic learnt from a fetch of all topics (faust creates its topics and
    then does one) is sent to untracked, and the next refresh drops it: a batch queued for it then
    waits for a leader that no refresh brings, until it expires (faust's producer request timeout,
    20 minutes, the worker's start-up hang on a fresh broker; the ingest's send timeout). Queued
    batches go out once their topic is tracked, so tracking before awaiting sends frees earlier ones.
    """
    for topic in topics:
        await producer.client.add_topic(topic)

"""The worker's own topic besides faust's changelogs (`stream_ticks`, co-partitioned with the ingest
topics), the changelogs' configuration, and the codec of everything the worker produces."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.codec import has_snappy
from aiokafka.errors import TopicAlreadyExistsError, for_code

from coex.settings import Settings
from ingest.publisher import pick_compression
from ingest.topics import MAX_MESSAGE_BYTES

TICKS = "stream_ticks"

# The state tables' changelog topics, which a worker reads whole to restore its tables at each start
# and rebalance. faust makes them compacted, but the broker compacts closed segments only, and a
# segment closes at 1 GB or after 7 days by default: every write since (held chunks written, then
# deleted) was read back at each restore, which grew from 0.5 to 27.5 s over an afternoon of
# imports. Here segments close after 5 minutes (or 64 MB, above the largest record), the cleaner
# takes a partition once a tenth of it is stale, and a deleted key's tombstone goes 5 minutes after
# its segment was cleaned (an import deletes about as many keys as it writes: chunks released,
# media joined; a million tombstones kept an hour took a restore 82 s). A restore then reads the
# live keys and the last minutes of writes. (Only a reader that took more than those 5 minutes
# between a key's value and its tombstone would keep a deleted key.)
CHANGELOG_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(MAX_MESSAGE_BYTES),
    "segment.ms": str(5 * 60 * 1000),
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(5 * 60 * 1000),
}


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


def changelog_topic(settings: Settings, table: str) -> str:
    """faust's name for a table's changelog topic (the app id is the consumer group)."""
    return f"{settings.worker_group}-{table}-changelog"


async def ensure_changelog_configs(settings: Settings, tables: Iterable[str]) -> list[str]:
    """Give the tables' existing changelog topics CHANGELOG_CONFIGS (faust creates a missing one with
    them, but changes no topic that exists); the names of the topics changed."""
    names = [changelog_topic(settings, table) for table in tables]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-worker-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names if name in existing]
        if not ours:
            return []
        stale = []
        for response in await admin.describe_configs(ours):
            for code, message, _, name, entries in response.resources:
                if code != 0:
                    raise for_code(code)(f"describing topic {name}: {message}")
                current = {entry[0]: entry[1] for entry in entries}
                if any(current.get(key) != value for key, value in CHANGELOG_CONFIGS.items()):
                    stale.append(name)
        if stale:
            # AlterConfigs sets a topic's whole configuration: the full set, as faust creates it.
            resources = [ConfigResource(ConfigResourceType.TOPIC, name, CHANGELOG_CONFIGS) for name in stale]
            for response in await admin.alter_configs(resources):
                for code, message, _, name in response.resources:
                    if code != 0:
                        raise for_code(code)(f"configuring topic {name}: {message}")
    finally:
        await admin.close()
    return sorted(stale)

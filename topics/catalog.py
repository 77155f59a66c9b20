"""Every Kafka topic coex uses: its name, its configuration and its creation (auto-create is off).

- the ingest topics, one per change field the platform documents plus `unknown`, keyed by
  phone_number_id;
- `normalized_messages`, the worker's releases;
- `stream_ticks`, the worker's timer topic, co-partitioned with the ingest topics;
- the changelog topics of the worker's tables, which faust creates with `CHANGELOG_CONFIGS` and
  coex reconfigures when they exist already;
- `onboarding_log`, each number's onboarding as written step by step (onboarding/log.py): one
  partition, compacted, keyed by phone_number_id;
- `onboarding_requests`, the onboardings accepted by the ingest's `POST /onboardings`, keyed by
  phone_number_id, for the workers to carry out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from runtime.settings import Settings
from schemas.routing import KNOWN_FIELDS, UNKNOWN_FIELD

log = logging.getLogger(__name__)

INGEST_TOPICS: tuple[str, ...] = (*KNOWN_FIELDS, UNKNOWN_FIELD)
NORMALIZED_MESSAGES = "normalized_messages"
TICKS = "stream_ticks"
ONBOARDING_LOG = "onboarding_log"
ONBOARDING_REQUESTS = "onboarding_requests"

# A history change can be 16 MB; leave room for the wrapper and the batch overhead.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

# Ticks are worthless once read.
TICKS_CONFIGS: dict[str, str] = {"retention.ms": "3600000"}

# Every number's onboarding, newest record per number kept for good: the truth `coex onboard` and the
# workers resume from. One partition: a few records a day, read whole by each onboarding.
ONBOARDING_LOG_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.ms": str(24 * 3600 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}

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


def topic_name(field: str, prefix: str) -> str:
    """The ingest topic of a change field: `<prefix><field>`, or `<prefix>unknown`."""
    return f"{prefix}{field if field in KNOWN_FIELDS else UNKNOWN_FIELD}"


def topic_names(settings: Settings) -> list[str]:
    """The topics `coex migrate` and the ingest create: the ingest topics and `normalized_messages`."""
    return [settings.topic(field) for field in (*INGEST_TOPICS, NORMALIZED_MESSAGES)]


def onboarding_topics(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """The control plane's topics: name -> (partitions, configuration)."""
    return {
        settings.topic(ONBOARDING_LOG): (1, ONBOARDING_LOG_CONFIGS),
        settings.topic(ONBOARDING_REQUESTS): (settings.topic_partitions, topic_configs(settings)),
    }


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
        "retention.ms": str(settings.topic_retention_ms),
        # Keep the producer's own batches as written: no recompression on the broker.
        "compression.type": "producer",
    }


def changelog_topic(settings: Settings, table: str) -> str:
    """faust's name for a table's changelog topic (the app id is the consumer group)."""
    return f"{settings.worker_group}-{table}-changelog"


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every ingest topic, `normalized_messages` and the control plane's topics that are
    missing; return those created (the caller says so: `coex migrate` in its summary, the services
    through `log_created`)."""
    configs = topic_configs(settings)
    wanted = {name: (settings.topic_partitions, configs) for name in topic_names(settings)}
    return await _create_missing(settings, wanted | onboarding_topics(settings))


async def ensure_tick_topic(settings: Settings) -> bool:
    """Create `<prefix>stream_ticks` if missing; whether it was created."""
    return bool(await _create_missing(settings, {settings.topic(TICKS): (settings.topic_partitions, TICKS_CONFIGS)}))


def log_created(created: list[str]) -> None:
    if created:
        log.info("created Kafka topics %s", ", ".join(sorted(created)))


async def ensure_changelog_configs(settings: Settings, tables: Iterable[str]) -> list[str]:
    """Give the tables' existing changelog topics CHANGELOG_CONFIGS (faust creates a missing one with
    them, but changes no topic that exists); the names of the topics changed."""
    names = [changelog_topic(settings, table) for table in tables]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-topics")
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


async def _create_missing(settings: Settings, wanted: Mapping[str, tuple[int, dict[str, str]]]) -> list[str]:
    """Create the topics of `wanted` (name -> partitions, configuration) that are missing; those created.

    Idempotent, and safe against another process creating the same topics at the same time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="coex-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        present = [name for name in wanted if name in existing and wanted[name][0] == settings.topic_partitions]
        if present:
            _warn_other_partition_counts(await admin.describe_topics(present), settings.topic_partitions)
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(name, wanted[name][0], settings.topic_replication, topic_configs=wanted[name][1])
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

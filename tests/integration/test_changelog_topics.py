"""The state tables' changelog topics on the real broker: configured so that the broker compacts them
(a restore reads the live keys, not every write since the first import), also when they exist
from before (faust changes no topic that exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runtime.settings import Settings
from streams.processor import HELD, TABLES
from topics.catalog import CHANGELOG_CONFIGS, MAX_MESSAGE_BYTES, changelog_topic, ensure_changelog_configs


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return {name: value for name, value, *_ in response.resources[0][4]}


async def test_a_changelog_made_before_is_set_to_be_compacted_and_left_alone_after(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, unique: Callable[[str], str]
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, worker_group=unique("cl-"))
    held = changelog_topic(settings, HELD)
    # As faust made it before: compacted, but with the broker's segments (1 GB or 7 days), which
    # the cleaner never reached on a machine's imports.
    old = {"cleanup.policy": "compact", "max.message.bytes": str(MAX_MESSAGE_BYTES)}
    await admin.create_topics([NewTopic(held, 1, 1, topic_configs=old)])
    assert (await _configs(admin, held))["segment.ms"] == str(7 * 24 * 3600 * 1000)

    assert await ensure_changelog_configs(settings, TABLES) == [held]  # the other tables have none yet

    configs = await _configs(admin, held)
    assert {key: configs[key] for key in CHANGELOG_CONFIGS} == CHANGELOG_CONFIGS
    assert int(configs["segment.ms"]) <= 10 * 60 * 1000
    assert await ensure_changelog_configs(settings, TABLES) == []

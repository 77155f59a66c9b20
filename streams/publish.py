"""The publish window: what records release goes to `normalized_messages` as they are applied, and
is confirmed at commit time, before their state changes are applied (streams/table_store.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.exceptions import ProducerSendError
from faust.types import TopicT

from streams import metrics, refused
from streams.processor import UNORDERED_KINDS, Output, Published, merge_unordered
from streams.sink_port import Writer
from topics.producing import track_topics

log = logging.getLogger(__name__)

# Bytes sent to normalized_messages before their confirmations are awaited, not at commit only.
PUBLISH_WINDOW_BYTES = 64 * 1024 * 1024


class PublishWindow:
    """Sends to `topic`; a record Kafka refuses becomes a dead letter in `writer`."""

    def __init__(self, topic: TopicT, writer: Writer, producer: Callable[[], AIOKafkaProducer]) -> None:
        self.topic = topic
        self.writer = writer
        self.producer = producer
        self.publishing: list[tuple[Awaitable[Any], bytes, bytes, int]] = []  # sent, key, head, size
        self.publishing_bytes = 0
        self.unordered: list[Published] = []

    async def publish(self, out: Output) -> None:
        # Joined media and live messages are merged per business and sent at commit.
        for record in out.published:
            if record.kind in UNORDERED_KINDS:
                self.unordered.append(record)
            else:
                await self.send(record)

    async def send(self, record: Published) -> None:
        value = record.payload()
        try:
            sent = await self.topic.send(key=record.key, value=value, force=True)
        except ProducerSendError as exc:
            self.refused(exc, record.key, value, len(value))
            return
        # Only its head is kept for a refusal at confirmation: a window of records is not held twice.
        self.publishing.append((sent, record.key, record.head(), len(value)))
        metrics.RELEASED.labels(record.kind).inc()
        self.publishing_bytes += len(value)
        if self.publishing_bytes >= PUBLISH_WINDOW_BYTES:
            # Many held chunks released at once: let the broker take these before unpacking more.
            await self.confirm()

    async def confirm_all(self) -> None:
        """Send the merged unordered records, then await every confirmation (at commit)."""
        for record in merge_unordered(self.unordered):
            await self.send(record)
        self.unordered.clear()
        await self.confirm()

    async def confirm(self) -> None:
        if self.publishing:
            await track_topics(self.producer(), (self.topic.get_topic_name(),))
            results = await asyncio.gather(*(sent for sent, *_ in self.publishing), return_exceptions=True)
            for (_, key, head, size), result in zip(self.publishing, results, strict=True):
                if isinstance(result, BaseException):
                    self.refused(result, key, head, size)
            self.publishing.clear()
        self.publishing_bytes = 0

    def refused(self, exc: BaseException, key: bytes, raw: bytes, size: int) -> None:
        """A record Kafka refuses becomes a dead letter, committed with the batch; any other send
        failure is raised (streams/refused.py)."""
        error = refused.refusal(exc)
        if error is None:
            raise exc
        topic = self.topic.get_topic_name()
        self.writer.add("dead_letters", [refused.dead_letter(topic, key, raw, size, error, time.time())])
        metrics.DEAD_LETTERS.labels(topic).inc()
        log.warning(
            "dead letter: %s refused a %d-byte record of %s: %r", topic, size, key.decode(errors="replace"), error
        )

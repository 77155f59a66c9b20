"""Writing one delivery's records to Kafka and knowing whether Kafka is reachable.

One long-lived idempotent producer (acks=all). A keeper task starts it and creates the topics
(retrying with backoff while the broker is away: the HTTP side serves meanwhile, /readyz and
POST answering 503), then refreshes metadata every few seconds; `ready()` says the producer is
connected and that metadata is fresh. The producer reconnects by itself after an outage, so the
service recovers without a restart; a producer the broker no longer takes records from (its
sequence numbers lost in a broker restart) is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ingest.errors import KafkaUnavailable, TooLarge
from runtime.settings import Settings
from schemas.routing import ChangeRecord
from topics.catalog import ensure_topics, log_created, topic_name, topic_names
from topics.producing import pick_compression, track_topics

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 2.0
CHECK_INTERVAL_DOWN_S = 0.5
STALE_AFTER_S = 3 * CHECK_INTERVAL_S + 1.0
BACKOFF_MAX_S = 5.0
RETRY_AFTER_S = 5
# The broker refuses this producer's id or sequence for good (a broker that restarted with records
# in flight answers OutOfOrderSequenceNumber to every later batch of that partition): aiokafka's
# idempotent producer does not reset itself, so a new producer, with a new id, takes over.
PRODUCER_LOST = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    ProducerClosed,
)


class Publisher(Protocol):
    """What the webhook needs from Kafka; tests of the HTTP layer alone may pass their own."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...

    async def publish(self, records: Sequence[ChangeRecord]) -> None:
        """Return once Kafka acknowledged every record; raise KafkaUnavailable or TooLarge."""
        ...

    async def publish_to(self, topic: str, key: bytes, value: bytes) -> None:
        """One record to a topic named in full (the control plane's); as `publish` otherwise."""
        ...


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._timeout = settings.kafka_send_timeout_s
        self._max_request = max(settings.kafka_max_request_bytes, 1024 * 1024)
        self._topics: dict[str, str] = {}
        self._producer: AIOKafkaProducer | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._up = False
        self._fresh_at = 0.0
        self._renew = asyncio.Event()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id="coex-ingest",
            acks="all",
            enable_idempotence=True,
            compression_type=pick_compression(),
            # Every POST waits for its acks, so linger is latency; 2 ms still fills batches at load.
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=self._max_request,
            request_timeout_ms=max(int(self._timeout * 1000), 5000),
            metadata_max_age_ms=60_000,
        )

    async def start(self) -> None:
        """Start the keeper; return after its first connection attempt, connected or not."""
        self._keeper = asyncio.create_task(self._keep(), name="coex-kafka-keeper")
        await self._first_attempt.wait()

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        producer, self._producer = self._producer, None
        self._up = False
        if producer is not None:
            # Flushes what is in flight, so nothing already acknowledged to a client is dropped.
            await producer.stop()

    def ready(self) -> bool:
        return self._producer is not None and self._up and time.monotonic() - self._fresh_at < STALE_AFTER_S

    async def publish(self, records: Sequence[ChangeRecord]) -> None:
        producer = self._producer
        if producer is None or not self._up:
            raise KafkaUnavailable("Kafka is not reachable", RETRY_AFTER_S)
        for record in records:
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, [])
            if size > self._max_request:
                raise TooLarge(f"a {record.field} change is {size} bytes, over Kafka's {self._max_request}")
        await self._send(producer, [(self._topic(r.field), r.key, r.value) for r in records])

    async def publish_to(self, topic: str, key: bytes, value: bytes) -> None:
        producer = self._producer
        if producer is None or not self._up:
            raise KafkaUnavailable("Kafka is not reachable", RETRY_AFTER_S)
        await self._send(producer, [(topic, key, value)])

    async def _send(self, producer: AIOKafkaProducer, records: list[tuple[str, bytes, bytes]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                # Send all, then await all acks: the records of one delivery share batches.
                acks = [await producer.send(topic, value, key=key) for topic, key, value in records]
                await asyncio.gather(*acks)
        except TimeoutError:
            self._up = False
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self._timeout:g} s", RETRY_AFTER_S) from None
        except KafkaError as exc:
            log.warning("Kafka refused a delivery: %r", exc)
            if isinstance(exc, PRODUCER_LOST) and producer is self._producer:
                self._up = False
                self._renew.set()
            raise KafkaUnavailable(f"Kafka refused the records: {exc}", RETRY_AFTER_S) from None
        self._mark_fresh()

    def _topic(self, field: str) -> str:
        topic = self._topics.get(field)
        if topic is None:
            topic = self._topics[field] = topic_name(field, self._settings.topic_prefix)
        return topic

    def _mark_fresh(self) -> None:
        self._up = True
        self._fresh_at = time.monotonic()

    async def _keep(self) -> None:
        try:
            await self._connect()
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL_S if self._up else CHECK_INTERVAL_DOWN_S):
                        await self._renew.wait()
                if self._renew.is_set():
                    await self._replace_producer()
                await self._check()
        except Exception:
            log.exception("the Kafka keeper stopped; /readyz will answer 503")
            raise
        finally:
            self._first_attempt.set()

    async def _connect(self) -> None:
        backoff = 0.25
        while True:
            producer = self._new_producer()
            try:
                async with asyncio.timeout(self._timeout):
                    await producer.start()
                    created = await ensure_topics(self._settings)
                    await track_topics(producer, topic_names(self._settings))
            except BaseException as exc:
                # Also on cancellation (stop() while connecting): close what was half opened.
                with contextlib.suppress(Exception):
                    await producer.stop()
                if not isinstance(exc, KafkaError | OSError | TimeoutError):
                    raise
                log.warning(
                    "Kafka at %s is not ready (%r); POST /webhook answers 503, retrying in %.2f s",
                    self._settings.kafka_bootstrap,
                    exc,
                    backoff,
                )
                self._first_attempt.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._producer = producer
            self._mark_fresh()
            self._first_attempt.set()
            log.info("Kafka producer connected to %s", self._settings.kafka_bootstrap)
            log_created(created)
            return

    async def _replace_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._up = False
        self._renew.clear()
        log.warning("Kafka no longer takes this producer's records; starting a new producer")
        if producer is not None:
            # Its batches fail or go out now; a broken partition's would wait forever, hence the bound.
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await producer.stop()
        await self._connect()

    async def _check(self) -> None:
        producer = self._producer
        if producer is None:
            return
        was_up = self._up
        try:
            async with asyncio.timeout(CHECK_INTERVAL_S):
                ok = bool(await producer.client.force_metadata_update())
        except TimeoutError:
            ok = False
        if ok:
            self._mark_fresh()
            if not was_up:
                log.info("Kafka is reachable again")
        else:
            self._up = False
            if was_up:
                log.warning("Kafka is not reachable; POST /webhook answers 503 until it is")

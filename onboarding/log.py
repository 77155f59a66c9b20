"""Each number's onboarding as a Kafka log, written by one process at a time.

The newest record per number in `onboarding_log` is the onboarding's truth: every step's outcome is
written there before the next step is taken, and whoever resumes (`coex onboard` run again, a worker
carrying out a `POST /onboardings`) reads it first.

One writer per number: a process that onboards a number opens a transactional producer whose
transactional id names the number. Kafka lets one producer per transactional id write; opening a
new one fences the one before, whose next commit fails (`OnboardingTaken`). The new one reads the
log only after its producer is open, so it sees every record the one before committed, and that
one commits nothing after. Two onboardings of one number that race therefore never both act on the
same state: the later one continues from what the earlier one wrote, the earlier one stops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from runtime.settings import Settings
from schemas.rows import OnboardingRow
from topics.catalog import ONBOARDING_LOG

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0


class OnboardingTaken(RuntimeError):
    """Another process opened this number's onboarding after this one: this one must stop."""


def encode(row: OnboardingRow) -> bytes:
    return orjson.dumps(row._asdict())


def decode(value: bytes) -> OnboardingRow:
    """By field name: a field added to OnboardingRow (with a default) reads records written before it."""
    doc: dict[str, Any] = orjson.loads(value)
    return OnboardingRow(**{name: doc[name] for name in OnboardingRow._fields if name in doc})


class OnboardingLog:
    """The log of one number, opened for writing (fencing any earlier writer of it)."""

    def __init__(self, settings: Settings, phone_number_id: str) -> None:
        self._settings = settings
        self._pnid = phone_number_id
        self._topic = settings.topic(ONBOARDING_LOG)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="coex-onboarding",
            transactional_id=f"{settings.topic_prefix}onboarding-{phone_number_id}",
            enable_idempotence=True,
            acks="all",
        )

    async def __aenter__(self) -> OnboardingLog:
        await self._producer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(ProducerFenced):  # fenced: nothing of ours is pending
            await self._producer.stop()

    async def load(self) -> OnboardingRow | None:
        """The number's newest committed record, None if it was never onboarded."""
        return await read_newest(self._settings, self._pnid)

    async def save(self, row: OnboardingRow) -> None:
        """Commit the record; OnboardingTaken if another process opened this number's log since."""
        try:
            async with self._producer.transaction():
                await self._producer.send_and_wait(self._topic, encode(row), key=self._pnid.encode())
        except ProducerFenced as exc:
            raise OnboardingTaken(
                f"another process took over the onboarding of {self._pnid}; it continues from here"
            ) from exc


async def read_newest(settings: Settings, phone_number_id: str) -> OnboardingRow | None:
    """The number's newest committed record, None if it was never onboarded; reads only (fences nothing)."""
    topic = settings.topic(ONBOARDING_LOG)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="coex-onboarding",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        newest: bytes | None = None
        deadline = time.monotonic() + READ_TIMEOUT_S
        while await consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {READ_TIMEOUT_S:.0f} s")
            batches = await consumer.getmany(partition, timeout_ms=1000)
            for record in batches.get(partition, []):
                if record.key == phone_number_id.encode() and record.offset < end:
                    newest = record.value
    finally:
        await consumer.stop()
    return decode(newest) if newest is not None else None

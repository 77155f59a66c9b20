"""Records Kafka refuses for what they are: dead letters of their own, not a stopped agent.

A send to `normalized_messages` can fail in two ways. Kafka away, a leader moving: the producer
retries, waiting helps. Or the record itself is refused (too large, corrupt, a timestamp out of
range): resending never passes, and letting the error out of the agent stopped every business on
the worker. Those become a dead letter (topic the one sent to, partition and offset -1, the record
or its head as `raw`) and the stream goes on; the messages are in the `messages` table all the same.
"""

from __future__ import annotations

import zlib

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from schemas.rows import DeadLetterRow

REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,  # the producer's own size check, or the broker's max.message.bytes
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,  # also the broker's INVALID_RECORD
    InvalidTimestampError,
)


def refusal(exc: BaseException) -> KafkaError | None:
    """The Kafka error that refuses the record, when `exc` is one (faust wraps the producer's errors
    in ProducerSendError); None when waiting may help or it is no Kafka error at all."""
    for error in (exc, exc.__cause__):
        if isinstance(error, REFUSALS):
            return error
    return None


def dead_letter(topic: str, key: bytes, raw: bytes, size: int, error: KafkaError, now: float) -> DeadLetterRow:
    """One per refused record; its `item` is the CRC of `raw`, so two refused records of a business
    keep a row each (as the writer does for rows ClickHouse refuses)."""
    text = raw.decode("utf-8", "replace")
    return DeadLetterRow(
        topic=topic,
        partition=-1,
        offset=-1,
        key=key.decode("utf-8", "replace"),
        error=f"{type(error).__name__}: {error} (a record of {size} bytes)",
        raw=text,
        failed_at=now,
        item=zlib.crc32(raw),
    )

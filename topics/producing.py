"""What the ingest's and the worker's producers share: the compression each picks and keeping a
producer's metadata on the topics it writes."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4, has_snappy, has_zstd


def pick_compression() -> str:
    """The ingest's: zstd when aiokafka has a codec for it, then lz4, else gzip.

    aiokafka compresses lz4 at level 9 (LZ4 HC), which it does not let us lower: ~90 MB/s on a
    history body against ~400 MB/s for zstd at its level 3, which also packs it ~35% smaller."""
    if has_zstd():
        return "zstd"
    if has_lz4():
        return "lz4"
    return "gzip"


def pick_worker_compression() -> str:
    """The worker's: snappy when aiokafka has a codec for it, else the ingest's choice.

    The worker sends the JSON of every message it releases and the held chunks' changelog, which is
    lz4 already. aiokafka compresses zstd at level 3, which it does not let us lower: ~250 MB/s on
    the held chunks, and the worker's busiest thread spent ~2 s per million messages in it; snappy
    runs at 1.3-5 GB/s for half zstd's ratio on the JSON (bench/RESULTS.md)."""
    return "snappy" if has_snappy() else pick_compression()


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

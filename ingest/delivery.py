"""One POST /webhook delivery, whatever carries it: size, signature, envelope, Kafka, answer.

Both the raw ASGI fast path (`ingest.fastpath`) and the FastAPI route (`ingest.webhook`) call
`answer_delivery`, so they cannot answer differently.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from starlette.requests import ClientDisconnect

from ingest.body import declared_length, read_limited
from ingest.errors import BadSignature, KafkaUnavailable, NotAnEnvelope, Refused
from ingest.signature import verify
from ingest.state import IngestState
from schemas.errors import EnvelopeError
from schemas.routing import split_delivery
from topics.catalog import topic_name

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-Coex-Delivery"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    delivery_id: str
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        headers = {DELIVERY_HEADER: self.delivery_id}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


async def answer_delivery(
    state: IngestState, content_length: str | None, signature: str | None, chunks: AsyncIterator[bytes]
) -> Answer:
    """Read, verify and write one delivery; 200 only once Kafka acknowledged every record.

    Raises ClientDisconnect when the client left before its body arrived (nothing written).
    """
    delivery_id = uuid.uuid4().hex
    metrics = state.metrics
    limit = state.settings.max_body_bytes
    try:
        # Refuse by the declared size before reading; count anyway, as the header may lie.
        declared_length(content_length, limit)
        body = await read_limited(chunks, limit)
        metrics.bytes_received.inc(len(body))
        count = await accept(state, body, signature, delivery_id)
    except ClientDisconnect:
        log.debug("delivery %s: client disconnected", delivery_id)
        raise
    except Refused as exc:
        metrics.answered("POST", exc.status)
        content = orjson.dumps({"ok": False, "error": exc.reason})
        if isinstance(exc, KafkaUnavailable):
            log.warning("delivery %s refused with 503: %s", delivery_id, exc.reason)
            return Answer(exc.status, content, delivery_id, exc.retry_after)
        log.info("delivery %s refused with %d: %s", delivery_id, exc.status, exc.reason)
        return Answer(exc.status, content, delivery_id)
    metrics.answered("POST", 200)
    return Answer(200, b'{"ok":true,"records":%d}' % count, delivery_id)


async def accept(state: IngestState, body: bytes, signature: str | None, delivery_id: str) -> int:
    """Write the delivery's records and return how many, once Kafka acknowledged all of them."""
    # Checked on the bytes as received, before any parsing.
    if state.secret is not None and not verify(state.secret, body, signature):
        raise BadSignature("missing or wrong X-Hub-Signature-256")
    try:
        records = split_delivery(body, delivery_id, time.time())
    except EnvelopeError as exc:
        raise NotAnEnvelope(f"not a webhook envelope: {exc}") from None
    started = time.perf_counter()
    await state.publisher.publish(records)
    metrics = state.metrics
    metrics.send_seconds.observe(time.perf_counter() - started)
    prefix = state.settings.topic_prefix
    for record in records:
        metrics.record_written(topic_name(record.field, prefix))
    return len(records)

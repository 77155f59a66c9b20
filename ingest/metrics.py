"""The ingest's Prometheus metrics, in a registry of its own per app (tests build many apps)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Acks of acks=all sends on a local broker take a few ms; an outage shows as the 10 s send timeout.
_SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coex_ingest_requests",
            "Webhook requests answered, by method and HTTP status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.bytes_received = Counter(
            "coex_ingest_received_bytes", "Webhook body bytes received", registry=self.registry
        )
        self.send_seconds = Histogram(
            "coex_ingest_kafka_send_seconds",
            "Time from the first send of a delivery to the ack of its last record",
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "coex_ingest_records", "Records acknowledged by Kafka, by topic", ["topic"], registry=self.registry
        )
        self.kafka_up = Gauge(
            "coex_ingest_kafka_up", "1 while the producer is connected and its metadata fresh", registry=self.registry
        )

        # Label lookups cost more than the increments on the hot path; keep the children.
        self._answered: dict[tuple[str, int], Any] = {}
        self._written: dict[str, Any] = {}

    def answered(self, method: str, code: int) -> None:
        child = self._answered.get((method, code))
        if child is None:
            child = self._answered[method, code] = self.requests.labels(method, str(code))
        child.inc()

    def record_written(self, topic: str) -> None:
        child = self._written.get(topic)
        if child is None:
            child = self._written[topic] = self.records.labels(topic)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

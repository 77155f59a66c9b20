"""`coex ingest`: create the topics, then serve the app with uvicorn (uvloop/httptools if present)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import uvicorn
from aiokafka.errors import KafkaError

from coex.memory import pace_gc
from coex.settings import Settings
from ingest.app import create_app
from ingest.state import InsecureConfig
from ingest.topics import ensure_topics

log = logging.getLogger(__name__)

KAFKA_WAIT_S = 60.0


def wait_for_topics(settings: Settings, within_s: float = KAFKA_WAIT_S) -> None:
    """Create the topics, retrying with backoff while Kafka does not answer yet."""
    deadline = time.monotonic() + within_s
    backoff = 0.5
    while True:
        try:
            asyncio.run(ensure_topics(settings))
            return
        except (KafkaError, OSError) as exc:
            if time.monotonic() + backoff > deadline:
                raise
            log.warning("Kafka at %s does not answer yet (%r); retrying", settings.kafka_bootstrap, exc)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def run(settings: Settings, args: argparse.Namespace) -> int:
    pace_gc()
    try:
        app = create_app(settings)
    except InsecureConfig as exc:
        log.error("%s", exc)
        return 2
    try:
        wait_for_topics(settings)
    except (KafkaError, OSError) as exc:
        log.error("Kafka at %s did not answer within %.0f s: %r", settings.kafka_bootstrap, KAFKA_WAIT_S, exc)
        return 1
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        loop="auto",
        http="auto",
        lifespan="on",
        # Per-request logging would cost more than the request; /metrics counts every answer.
        access_log=False,
        server_header=False,
        log_config=None,
    )
    log.info("ingest listening on http://%s:%d/webhook", settings.ingest_host, settings.ingest_port)
    uvicorn.Server(config).run()
    return 0

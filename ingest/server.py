"""`coex ingest`: serve the app with uvicorn (uvloop/httptools if present).

It serves at once, Kafka or not: /healthz answers, /readyz and POST /webhook answer 503 until the
publisher has reached Kafka and created the topics (ingest.publisher), so an orchestrator sees a
live process waiting for its broker and the platform retries."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from ingest.app import create_app
from ingest.state import InsecureConfig
from runtime.memory import pace_gc
from runtime.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    pace_gc()
    try:
        app = create_app(settings)
    except InsecureConfig as exc:
        log.error("%s", exc)
        return 2
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

"""The ingest's FastAPI application, built by `create_app` (no module-level app object)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ingest import health, onboardings, webhook
from ingest.fastpath import is_webhook_post, serve_webhook
from ingest.metrics import IngestMetrics
from ingest.publisher import KafkaPublisher, Publisher
from ingest.state import IngestState, signing_secret
from runtime.settings import Settings


class IngestApp(FastAPI):
    """FastAPI, with POST /webhook taken straight to the raw ASGI handler (`ingest.fastpath`)."""

    def __init__(self, state: IngestState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state.ingest = state
        self._ingest = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_webhook_post(scope):
            await serve_webhook(self._ingest, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, publisher: Publisher | None = None) -> FastAPI:
    """The app; raises InsecureConfig without an app secret (unless signatures are skipped)."""
    secret = signing_secret(settings)
    kafka = publisher if publisher is not None else KafkaPublisher(settings)
    metrics = IngestMetrics()
    metrics.kafka_up.set_function(lambda: 1.0 if kafka.ready() else 0.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await kafka.start()
        try:
            yield
        finally:
            await kafka.stop()

    app = IngestApp(
        IngestState(settings=settings, secret=secret, publisher=kafka, metrics=metrics),
        title="coex ingest",
        summary="WhatsApp Business Coexistence webhooks -> Kafka",
        version="0.1.0",
        lifespan=lifespan,
        # The schema and its two viewers describe every route to whoever reaches the public port:
        # served only when asked for (COEX_INGEST_DOCS; `coex dev` turns them on).
        openapi_url="/openapi.json" if settings.ingest_docs else None,
        docs_url="/docs" if settings.ingest_docs else None,
        redoc_url="/redoc" if settings.ingest_docs else None,
    )
    app.include_router(webhook.router)
    app.include_router(health.router)
    app.include_router(onboardings.router)
    return app

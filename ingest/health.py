"""`/healthz` (the process answers), `/readyz` (Kafka is reachable), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ingest.deps import MetricsDep, PublisherDep
from ingest.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/readyz",
    response_model=None,
    responses={200: {"description": "Kafka is reachable"}, 503: {"description": "Kafka is not reachable"}},
)
async def readyz(publisher: PublisherDep) -> JSONResponse:
    if publisher.ready():
        return JSONResponse({"ok": True, "kafka": "up"})
    return JSONResponse({"ok": False, "kafka": "down"}, status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=CONTENT_TYPE)

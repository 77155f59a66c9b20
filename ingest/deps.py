"""Route dependencies, as `Annotated` aliases so each handler's signature says what it needs.

`async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which costs more
than the whole webhook hot path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.state import IngestState
from runtime.settings import Settings


async def get_state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


async def get_settings(state: Annotated[IngestState, Depends(get_state)]) -> Settings:
    return state.settings


async def get_publisher(state: Annotated[IngestState, Depends(get_state)]) -> Publisher:
    return state.publisher


async def get_metrics(state: Annotated[IngestState, Depends(get_state)]) -> IngestMetrics:
    return state.metrics


StateDep = Annotated[IngestState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
MetricsDep = Annotated[IngestMetrics, Depends(get_metrics)]

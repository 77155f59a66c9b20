"""A worker's web port: what operators need (`/metrics`, `/healthz`), nothing of its tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.web.base import BlueprintManager
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def serve_operator_pages(app: faust.App, before_metrics: Callable[[], None]) -> None:
    """Serve only `/metrics` and `/healthz` on the app's web port.

    `before_metrics` refreshes the gauges that are read on demand (consumer lag)."""
    # faust's own blueprints answer anyone who reaches the port: table keys (`/table/<name>/<key>/`,
    # a held history chunk with its customers' message text), the cluster's routing (`/router/`),
    # statistics, the service graph and an index. An empty manager, set before the server starts
    # (it applies the manager then), registers none of them; the pages below are views of their own.
    app.web.blueprints = BlueprintManager()

    async def metrics(view: Any, request: Any) -> Any:  # faust binds a page function to its view
        before_metrics()
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def healthz(view: Any, request: Any) -> Any:
        # Served by the worker's event loop: an answer means the process runs and its loop turns.
        return view.json({"ok": True})

    app.page("/metrics")(metrics)
    app.page("/healthz")(healthz)

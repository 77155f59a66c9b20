"""What a worker's web server would serve, read off its routes without starting it.

The real worker on a real port: tests/integration/test_worker_web.py. This one fails at once if a
faust release registers its built-in pages in a way `streams.web` no longer turns off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.settings import Settings
from streams.app import StreamWorker


class _NoWriter:
    buffered_rows = 0
    failing = False


def _app(tmp_path: Path, **settings: Any) -> Any:
    return StreamWorker(Settings(_env_file=None, data_dir=tmp_path, **settings), _NoWriter()).app  # type: ignore[arg-type, call-arg]


def test_the_worker_routes_only_metrics_and_health(tmp_path: Path) -> None:
    app = _app(tmp_path)
    app.web.init_server()  # what the server does as it starts: faust's blueprints are applied here
    routes = {(route.method, route.resource.canonical) for route in app.web.web_app.router.routes()}
    assert routes == {(method, page) for method in ("GET", "HEAD") for page in ("/metrics", "/healthz")}


def test_the_web_port_listens_on_loopback_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _app(tmp_path).conf.web_bind == "127.0.0.1"
    monkeypatch.setenv("COEX_WORKER_WEB_BIND", "0.0.0.0")
    assert _app(tmp_path).conf.web_bind == "0.0.0.0"

"""The ingest's API docs (/docs, /redoc, /openapi.json): off on its public port unless asked for,
on in `coex dev`. A real `coex ingest` with the defaults: tests/integration/test_ingest_server.py."""

from __future__ import annotations

import httpx
import pytest

from coex.dev import child_env, with_dev_defaults
from ingest.app import create_app
from runtime.settings import Settings
from tests.unit.ingest.test_http import MemoryPublisher, settings

DOC_PAGES = ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


async def _codes(s: Settings) -> dict[str, int]:
    transport = httpx.ASGITransport(app=create_app(s, MemoryPublisher()))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        return {page: (await client.get(page)).status_code for page in (*DOC_PAGES, "/healthz")}


async def test_the_docs_are_not_served_by_default() -> None:
    assert await _codes(settings()) == {**dict.fromkeys(DOC_PAGES, 404), "/healthz": 200}


async def test_the_docs_are_served_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COEX_INGEST_DOCS", "1")
    assert await _codes(settings()) == dict.fromkeys((*DOC_PAGES, "/healthz"), 200)


def test_coex_dev_turns_the_docs_on_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert child_env(with_dev_defaults(settings()), "secret")["COEX_INGEST_DOCS"] == "1"
    monkeypatch.setenv("COEX_INGEST_DOCS", "0")
    assert child_env(with_dev_defaults(settings()), "secret")["COEX_INGEST_DOCS"] == "0"

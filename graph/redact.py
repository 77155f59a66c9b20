"""Secrets of Graph calls out of logs and errors.

The code exchange carries the app secret and the signup code in its query string, and httpx logs
every request's URL at INFO (`HTTP Request: GET https://...`). `QueryFilter`, on httpx's logger,
masks those parameters' values before any handler formats the line. `scrub` masks known secrets in
any text the client raises (Graph echoes a malformed token in its message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import httpx

MASK = "***"
SECRET_PARAMS: frozenset[str] = frozenset(
    {"client_secret", "code", "access_token", "fb_exchange_token", "input_token", "appsecret_proof"}
)


def redact_url(url: httpx.URL) -> httpx.URL:
    """`url` with the values of its secret query parameters shown as ***."""
    if not any(name in SECRET_PARAMS for name in url.params):
        return url
    params = [(name, MASK if name in SECRET_PARAMS else value) for name, value in url.params.multi_items()]
    return url.copy_with(params=params)


class QueryFilter(logging.Filter):
    """Masks secret query parameters in the URLs a log record carries (httpx passes them as arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


def protect_httpx_logs() -> None:
    """Install `QueryFilter` on httpx's logger once per process."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, QueryFilter) for existing in logger.filters):
        logger.addFilter(QueryFilter())


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret, as written or URL-encoded, shown as ***."""
    for secret in secrets:
        if len(secret) < 4:  # too short to tell from ordinary text; Graph's secrets are long
            continue
        for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(spelling, MASK)
    return text

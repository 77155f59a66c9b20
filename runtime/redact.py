"""Secrets out of what coex prints: the password of a `COEX_CLICKHOUSE_URL`.

`redact_url` is how a URL is shown; `scrub` cleans any other text (an exception from a client
library that embeds the URL or its password) before it reaches a terminal, and `scrub_logs` every
log line the `coex` command writes.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:  # a malformed port or netloc: no password can be told apart
        return ""


def redact_url(url: str) -> str:
    """`url` with its password, if any, shown as ***; the user, host and path stay readable."""
    if not _password(url):
        return url
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def scrub(text: str, url: str) -> str:
    """`text` with `url` shown redacted and its password, as written or percent-decoded, masked."""
    text = text.replace(url, redact_url(url))
    password = _password(url)
    for spelling in {password, unquote(password)} - {""}:
        text = text.replace(spelling, MASK)
    return text


class ScrubbedFormatter(logging.Formatter):
    """A log handler's formatter whose lines (tracebacks included) are scrubbed of `url`'s password."""

    def __init__(self, inner: logging.Formatter, url: str) -> None:
        super().__init__()
        self._inner = inner
        self._url = url

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self._inner.format(record), self._url)


def scrub_logs(url: str) -> None:
    """Scrub every line the root logger's handlers write (a client library may log the URL)."""
    if not _password(url):
        return
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ScrubbedFormatter(handler.formatter or logging.Formatter(), url))

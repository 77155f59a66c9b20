"""A failed Graph API call, read from the platform's error body, and whether it is worth retrying.

Graph answers an error as `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
"is_transient"}}` (developers.facebook.com/docs/graph-api/guides/error-handling). `parse_error` takes
any answer, also one that is not JSON (a proxy's HTML page), and always yields a `GraphError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

# Codes the platform documents as temporary: wait and retry. Not 1 (API Unknown): Graph also answers
# a wrong client secret with it, and WhatsApp's table reads it as "invalid request or server error";
# a real outage comes with a 5xx or `is_transient`, retried anyway.
TRANSIENT_CODES: frozenset[int] = frozenset(
    {
        2,  # API Service: temporary issue due to downtime or overload
        4,  # API Too Many Calls: the app's rate limit
        17,  # API User Too Many Calls: the user's rate limit
        32,  # Page-level throttling
        341,  # Application limit reached
        613,  # Calls within one hour exceeded
        80007,  # WhatsApp Business Account rate limit
        130429,  # Cloud API throughput reached
        131000,  # Something went wrong: try again
        131016,  # Service unavailable: a service is temporarily unavailable
        133004,  # Server temporarily unavailable
    }
)
_MESSAGE_MAX = 500  # a proxy's page as the message: its start says enough


class GraphError(Exception):
    """A Graph API call that failed: the platform's error, or the network's (`status` None).

    `transient`: the same call may pass later. `outcome_unknown`: a call that must be made only once
    (a sync request) was sent and its answer lost, so the platform may have acted on it.
    The message never holds a token or a secret (the client scrubs it before raising)."""

    def __init__(
        self,
        status: int | None,
        code: int | None,
        subcode: int | None,
        type: str,
        message: str,
        fbtrace_id: str,
        transient: bool,
        *,
        outcome_unknown: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.subcode = subcode
        self.type = type
        self.message = message
        self.fbtrace_id = fbtrace_id
        self.transient = transient
        self.outcome_unknown = outcome_unknown
        self.attempts = attempts

    @classmethod
    def local(
        cls, message: str, *, status: int | None = None, transient: bool = False, outcome_unknown: bool = False
    ) -> GraphError:
        """An error without a Graph error body: the network's, a setting's, an answer coex cannot use."""
        return cls(status, None, None, "", message, "", transient, outcome_unknown=outcome_unknown)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as `cls(*args)`; this one's constructor takes its fields.
        fields = (self.status, self.code, self.subcode, self.type, self.message, self.fbtrace_id, self.transient)
        return (GraphError, fields, {"outcome_unknown": self.outcome_unknown, "attempts": self.attempts})

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no answer"
        parts = [f"code {self.code}"] if self.code is not None else []
        if self.subcode is not None:
            parts.append(f"subcode {self.subcode}")
        if self.type:
            parts.append(self.type)
        detail = f" ({', '.join(parts)})" if parts else ""
        trace = f" [fbtrace_id {self.fbtrace_id}]" if self.fbtrace_id else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"Graph API error, {where}{detail}: {self.message}{trace}{tries}"

    def __repr__(self) -> str:
        return (
            f"GraphError(status={self.status!r}, code={self.code!r}, subcode={self.subcode!r}, type={self.type!r}, "
            f"message={self.message!r}, fbtrace_id={self.fbtrace_id!r}, transient={self.transient!r}, "
            f"outcome_unknown={self.outcome_unknown!r}, attempts={self.attempts!r})"
        )


def _int(value: object) -> int | None:
    """A code as Graph sends it (a number, sometimes a numeric string); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_error(status: int, body: bytes) -> GraphError:
    """The error a non-2xx answer with this body means; any body, never raises."""
    try:
        document: object = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        text = body.decode("utf-8", "replace").strip()[:_MESSAGE_MAX]
        return GraphError.local(text or f"HTTP {status}", status=status, transient=transient_status(status))
    code = _int(error.get("code"))
    is_transient = error.get("is_transient") is True
    return GraphError(
        status,
        code,
        _int(error.get("error_subcode")),
        _str(error.get("type")),
        _str(error.get("message"))[:_MESSAGE_MAX] or f"HTTP {status}",
        _str(error.get("fbtrace_id")),
        transient_status(status) or is_transient or code in TRANSIENT_CODES,
    )


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the answer's Retry-After asks to wait (delta-seconds or an HTTP date), None if absent or unreadable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

"""Which row type each ClickHouse table holds: the writer and the engine endpoint trust only these."""

from __future__ import annotations

from typing import Any, NamedTuple

from schemas.rows import (
    AccountEventRow,
    ContactRow,
    DeadLetterRow,
    HistorySyncRow,
    IdentityRow,
    MessageRow,
    OnboardingRow,
    PurgeRow,
    StatusRow,
    WebhookErrorRow,
)

ROW_TYPES: dict[str, type[tuple[Any, ...]]] = {
    "messages": MessageRow,
    "contacts": ContactRow,
    "history_sync": HistorySyncRow,
    "account_events": AccountEventRow,
    "dead_letters": DeadLetterRow,
    "message_statuses": StatusRow,
    "webhook_errors": WebhookErrorRow,
    "user_identities": IdentityRow,
    "onboardings": OnboardingRow,
    "purges": PurgeRow,
}


class SinkKeyRow(NamedTuple):
    """A message key the writer touched in one flush (table `sink_keys`, the writer's scratch)."""

    token: str
    phone_number_id: str
    message_id: str


SINK_KEYS = "sink_keys"

# Tables a peer process may insert into through the owner's endpoint.
WRITABLE_TABLES: frozenset[str] = frozenset({*ROW_TYPES, SINK_KEYS})


def columns(table: str) -> tuple[str, ...]:
    row_type = SinkKeyRow if table == SINK_KEYS else ROW_TYPES[table]
    fields: tuple[str, ...] = row_type._fields  # type: ignore[attr-defined]
    return fields

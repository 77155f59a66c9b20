"""What the onboarding reads and writes in ClickHouse: its mirror in `onboardings` (the log in
Kafka is the truth, onboarding/log.py) and the business's lifecycle events."""

from __future__ import annotations

from schemas.rows import OFFBOARDING_EVENTS, OnboardingRow
from sinks.encode import rows_to_arrow
from sinks.engine import Engine
from sinks.statements import sql_string

LIFECYCLE_EVENTS = (*sorted(OFFBOARDING_EVENTS), "ACCOUNT_RECONNECTED")


class OnboardingStore:
    def __init__(self, engine: Engine, database: str) -> None:
        self._engine = engine
        self._db = database

    def mirror(self, row: OnboardingRow) -> None:
        self._engine.insert_arrow("onboardings", rows_to_arrow(OnboardingRow, [row]))

    def load(self, phone_number_id: str) -> OnboardingRow | None:
        names = ", ".join(OnboardingRow._fields)
        rows = self._engine.query_rows(
            f"SELECT {names} FROM {self._db}.onboardings FINAL WHERE phone_number_id = {sql_string(phone_number_id)}"
        )
        return _row(rows[0]) if rows else None

    def offboarded_since(self, waba_id: str, since: int) -> bool:
        """Whether the WABA's latest lifecycle event since `since` (unix seconds) offboarded it."""
        events = ", ".join(sql_string(e) for e in LIFECYCLE_EVENTS)
        rows = self._engine.query_rows(
            f"SELECT argMax(event, event_at) FROM {self._db}.account_events FINAL "
            f"WHERE waba_id = {sql_string(waba_id)} AND event IN ({events}) AND event_at >= toDateTime({int(since)}) "
            "HAVING count() > 0"
        )
        return bool(rows) and rows[0][0] in OFFBOARDING_EVENTS


def _row(values: tuple[object, ...]) -> OnboardingRow:
    doc = dict(zip(OnboardingRow._fields, values, strict=True))
    for name, value in doc.items():
        if hasattr(value, "timestamp"):
            doc[name] = int(value.timestamp())
    return OnboardingRow(**doc)  # type: ignore[arg-type]

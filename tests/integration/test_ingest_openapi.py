"""schemathesis against the ingest's OpenAPI schema: every answer is one the schema documents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings

from ingest.app import create_app
from tests.integration.ingest_kit import ingest_settings
from topics.catalog import ensure_topics


def test_every_answer_is_documented(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    # Unsigned requests would all be 401; skipping the check lets generated bodies reach the
    # envelope parser and Kafka. The real broker takes what is accepted.
    # The schema is served only when asked for (COEX_INGEST_DOCS), as `coex dev` does.
    s = ingest_settings(
        kafka_bootstrap, unique("it-schema-") + ".", app_secret=None, insecure_skip_signature=True, ingest_docs=True
    )
    asyncio.run(ensure_topics(s))
    # The app runs with its lifespan (Kafka producer) on schemathesis's ASGI loop; the
    # schemathesis pytest plugin ends that lifespan when the test ends.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(s))
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {(op.method.upper(), op.path) for op in operations} >= {("GET", "/webhook"), ("POST", "/webhook")}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate()

        check()

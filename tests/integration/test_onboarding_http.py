"""`POST /onboardings` and `GET /onboardings/{phone_number_id}` against the real broker: the codes,
the sealed request on `onboarding_requests`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from onboarding import requests
from runtime.settings import Settings
from tests.integration.ingest_kit import SECRET, ingest_client, ingest_settings
from topics.catalog import ONBOARDING_REQUESTS, ensure_topics

ADMIN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
BODY = {"waba_id": "102290129340398", "phone_number_id": "106540352242922", "token": "business-token-XYZ"}


@pytest.fixture
async def settings(kafka_bootstrap: str, unique: Callable[[str], str]) -> AsyncIterator[Settings]:
    s = ingest_settings(kafka_bootstrap, unique("it-onb-") + ".", admin_token=ADMIN)
    await ensure_topics(s)
    yield s


async def _requests_written(settings: Settings) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        settings.topic(ONBOARDING_REQUESTS),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000)
        return [r.value for rs in batch.values() for r in rs if r.value is not None]
    finally:
        await consumer.stop()


async def test_unset_admin_token_hides_both_endpoints(settings: Settings) -> None:
    async with ingest_client(settings.model_copy(update={"admin_token": None})) as client:
        assert (await client.post("/onboardings", json=BODY, headers=AUTH)).status_code == 404
        assert (await client.get("/onboardings/106540352242922", headers=AUTH)).status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {ADMIN}", "Bearer", f"Bearer {ADMIN}x"])
async def test_missing_or_wrong_token_is_401(settings: Settings, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with ingest_client(settings) as client:
        post = await client.post("/onboardings", json=BODY, headers=headers)
        get = await client.get("/onboardings/106540352242922", headers=headers)
    assert (post.status_code, get.status_code) == (401, 401)
    assert await _requests_written(settings) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        orjson.dumps({"waba_id": "1", "phone_number_id": "2"}),  # neither code nor token
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": "c-secret", "token": "t-secret"}),
        orjson.dumps({"waba_id": "1", "code": "c-secret"}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": ""}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2/../3", "code": "c-secret"}),
        orjson.dumps({"waba_id": "1", "phone_number_id": "2", "code": "c-secret", "extra": 1}),
    ],
)
async def test_bad_body_is_400_and_never_echoes_the_secret(settings: Settings, body: bytes) -> None:
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "secret" not in answer.text
    assert await _requests_written(settings) == []


async def test_accepted_request_is_sealed_on_its_topic(settings: Settings) -> None:
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", json=BODY, headers=AUTH)
        unknown = await client.get("/onboardings/999", headers=AUTH)
    assert answer.status_code == 202, answer.text
    state = answer.json()
    assert (state["phone_number_id"], state["waba_id"], state["step"]) == (
        BODY["phone_number_id"],
        BODY["waba_id"],
        "accepted",
    )
    assert "business-token-XYZ" not in answer.text
    assert unknown.status_code == 404
    [value] = await _requests_written(settings)
    assert b"business-token-XYZ" not in value
    accepted = requests.decode(value, requests.derive_key(SecretStr(SECRET)))
    assert accepted.request.token is not None and accepted.request.token.get_secret_value() == "business-token-XYZ"
    assert accepted.request.phone_number_id == BODY["phone_number_id"]


async def test_kafka_away_is_503(unique: Callable[[str], str]) -> None:
    settings = ingest_settings("127.0.0.1:1", unique("it-onb-") + ".", admin_token=ADMIN, kafka_send_timeout_s=1.0)
    async with ingest_client(settings) as client:
        answer = await client.post("/onboardings", json=BODY, headers=AUTH)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]

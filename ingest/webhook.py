"""`GET /webhook` (subscription handshake) and `POST /webhook` (deliveries) as FastAPI routes.

The POST route is what the OpenAPI schema shows; at run time `ingest.app` answers it on the raw
ASGI fast path, and both call `ingest.delivery.answer_delivery`.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from ingest.delivery import DELIVERY_HEADER, JSON, answer_delivery
from ingest.deps import SettingsDep, StateDep

router = APIRouter(tags=["webhook"])


class Accepted(BaseModel):
    ok: Literal[True]
    records: int


class Refusal(BaseModel):
    ok: Literal[False]
    error: str


_DELIVERY_ID = {
    DELIVERY_HEADER: {"description": "this delivery's id, as in its Kafka records", "schema": {"type": "string"}}
}
_POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "every record is acknowledged by Kafka", "headers": _DELIVERY_ID},
    400: {"model": Refusal, "description": "not JSON, or not a webhook envelope; nothing written"},
    401: {"model": Refusal, "description": "missing or wrong X-Hub-Signature-256; nothing written"},
    413: {"model": Refusal, "description": "over the body size limit; nothing written"},
    503: {
        "model": Refusal,
        "description": "Kafka cannot take the delivery now; retry later",
        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    },
}
# What `schemas.routing.split_delivery` requires; a change's `value` is checked downstream.
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["entry"],
    "properties": {
        "object": {"type": "string"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "changes"],
                "properties": {
                    "id": {"type": "string", "minLength": 1, "description": "the WABA id"},
                    "time": {"type": "integer"},
                    "changes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "value"],
                            "properties": {"field": {"type": "string", "minLength": 1}, "value": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}
_POST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the webhook envelope exactly as the platform sends it: `{object, entry[].changes[]}`",
        "content": {JSON: {"schema": ENVELOPE_SCHEMA}},
    },
    "parameters": [
        {
            "name": "X-Hub-Signature-256",
            "in": "header",
            "required": False,
            "description": "`sha256=<hex HMAC-SHA256 of the raw body with the app secret>`; "
            "required unless the service runs with COEX_INSECURE_SKIP_SIGNATURE=1",
            "schema": {"type": "string"},
        }
    ],
}


@router.get(
    "/webhook",
    response_class=PlainTextResponse,
    responses={200: {"description": "the challenge, echoed"}, 403: {"description": "wrong mode or token"}},
)
async def handshake(
    settings: SettingsDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> PlainTextResponse:
    """The platform's subscription check: echo `hub.challenge` when the verify token matches."""
    expected = settings.verify_token.get_secret_value() if settings.verify_token is not None else ""
    if (
        mode == "subscribe"
        and expected
        and token is not None
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return PlainTextResponse(challenge or "")
    return PlainTextResponse("forbidden", status_code=403)


@router.post("/webhook", response_model=None, responses=_POST_RESPONSES, openapi_extra=_POST_OPENAPI)
async def receive(request: Request, state: StateDep) -> Response:
    """A webhook delivery: answered 200 only once Kafka holds every change of it."""
    try:
        answer = await answer_delivery(
            state,
            request.headers.get("content-length"),
            request.headers.get("x-hub-signature-256"),
            request.stream(),
        )
    except ClientDisconnect:
        return Response(status_code=400)
    return Response(answer.body, status_code=answer.status, headers=answer.headers(), media_type=JSON)

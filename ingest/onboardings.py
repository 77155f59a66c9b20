"""`POST /onboardings` and `GET /onboardings/{phone_number_id}`: the control plane's HTTP side.

Both need `Authorization: Bearer <COEX_ADMIN_TOKEN>` and answer 404 while it is unset, as if they
did not exist. A POST writes one record to `onboarding_requests` (onboarding/requests.py: the code
or token sealed) and answers 202 once Kafka holds it; a stream worker then carries the onboarding
out and keeps at it until done (streams/onboarding_agent.py). The state answered is the newest
record of the number's onboarding log (onboarding/log.py), the truth the worker writes first.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from ingest.deps import PublisherDep, SettingsDep
from ingest.errors import KafkaUnavailable
from onboarding import requests
from onboarding.log import read_newest
from onboarding.sequence import Request as OnboardingRequest
from runtime.settings import Settings
from schemas.rows import OnboardingRow
from topics.catalog import ONBOARDING_REQUESTS

log = logging.getLogger(__name__)

ACCEPTED = "accepted"  # the step of an onboarding no worker has begun yet
ID_PATTERN = r"^[0-9]{1,32}$"  # Graph's ids are numeric


class OnboardingBody(BaseModel):
    """The onboarding to carry out: the business's signup `code` or its `token`, exactly one."""

    model_config = ConfigDict(extra="forbid")

    waba_id: str = Field(pattern=ID_PATTERN)
    phone_number_id: str = Field(pattern=ID_PATTERN)
    code: SecretStr | None = Field(default=None, min_length=1)
    token: SecretStr | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.code is None) == (self.token is None):
            raise ValueError("give exactly one of code and token")
        return self


class OnboardingState(BaseModel):
    """The `onboardings` columns; times in unix seconds (UTC), 0 and '' until known."""

    phone_number_id: str
    waba_id: str
    onboarded_at: int
    deadline_at: int
    is_on_biz_app: int
    platform_type: str
    contacts_request_id: str
    contacts_requested_at: int
    history_request_id: str
    history_requested_at: int
    last_error: str
    updated_at: int
    step: str = Field(description="where the onboarding is: accepted (no worker began it yet), started, ... complete")
    attempt: int

    @classmethod
    def of(cls, row: OnboardingRow) -> OnboardingState:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})

    @classmethod
    def accepted(cls, body: OnboardingBody, now: int) -> OnboardingState:
        return cls(
            phone_number_id=body.phone_number_id,
            waba_id=body.waba_id,
            onboarded_at=0,
            deadline_at=0,
            is_on_biz_app=0,
            platform_type="",
            contacts_request_id="",
            contacts_requested_at=0,
            history_request_id="",
            history_requested_at=0,
            last_error="",
            updated_at=now,
            step=ACCEPTED,
            attempt=0,
        )


class Problem(BaseModel):
    detail: str


async def admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """404 while COEX_ADMIN_TOKEN is unset, 401 unless the bearer token is it (compared in constant time)."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not expected:
        raise HTTPException(404, "Not Found")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(tags=["onboardings"], dependencies=[Depends(admin)])

_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong `Authorization: Bearer <COEX_ADMIN_TOKEN>`"},
    404: {"model": Problem, "description": "unknown number; every call while COEX_ADMIN_TOKEN is unset"},
}
_ID_SCHEMA = {"type": "string", "pattern": ID_PATTERN}
_SECRET_SCHEMA = {"type": "string", "minLength": 1}
# Written out rather than the model's: it says "exactly one of code and token", which the model checks in code.
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["waba_id", "phone_number_id"],
                    "properties": {
                        "waba_id": _ID_SCHEMA,
                        "phone_number_id": _ID_SCHEMA,
                        "code": {**_SECRET_SCHEMA, "description": "the Embedded Signup code, exchanged once"},
                        "token": {**_SECRET_SCHEMA, "description": "the business's access token"},
                    },
                    "oneOf": [{"required": ["code"]}, {"required": ["token"]}],
                }
            }
        },
    }
}


@router.post(
    "/onboardings",
    status_code=202,
    response_model=OnboardingState,
    responses={
        **_AUTH_RESPONSES,
        400: {"model": Problem, "description": "not JSON, or not the body described; nothing written"},
        503: {"model": Problem, "description": "Kafka cannot take the request now, or COEX_APP_SECRET is unset"},
    },
    openapi_extra=_BODY,
)
async def onboard(request: Request, settings: SettingsDep, publisher: PublisherDep) -> JSONResponse:
    """Accept an onboarding: answered 202 once Kafka holds it; a stream worker carries it out."""
    try:
        body = OnboardingBody.model_validate_json(await request.body())
    except ValidationError as exc:
        # Each problem's place and message only: the input (a code, a token) is never echoed.
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        return _problem(400, reasons)
    if settings.app_secret is None or not settings.app_secret.get_secret_value():
        return _problem(503, "COEX_APP_SECRET is not set: the request's secret cannot be sealed")
    now = int(time.time())
    value = requests.encode(
        OnboardingRequest(body.waba_id, body.phone_number_id, code=body.code, token=body.token),
        now,
        requests.derive_key(settings.app_secret),
    )
    try:
        await publisher.publish_to(settings.topic(ONBOARDING_REQUESTS), body.phone_number_id.encode(), value)
    except KafkaUnavailable as exc:
        return _problem(503, exc.reason, {"Retry-After": str(exc.retry_after)})
    log.info("onboarding of %s (WABA %s) accepted", body.phone_number_id, body.waba_id)
    try:
        known = await _state(settings, body.phone_number_id)
    except Exception as exc:  # accepted all the same: the state is only what the answer shows
        log.warning("reading the onboarding log of %s failed: %r", body.phone_number_id, exc)
        known = None
    # An onboarding of the number under way or done is what this request continues.
    state = known if known is not None and known.waba_id == body.waba_id else OnboardingState.accepted(body, now)
    return JSONResponse(state.model_dump(), status_code=202)


@router.get(
    "/onboardings/{phone_number_id}",
    response_model=OnboardingState,
    responses={**_AUTH_RESPONSES, 503: {"model": Problem, "description": "Kafka cannot be read now"}},
)
async def onboarding(phone_number_id: str, settings: SettingsDep) -> OnboardingState | JSONResponse:
    """The number's onboarding as its worker last saved it."""
    try:
        state = await _state(settings, phone_number_id)
    except Exception as exc:
        log.warning("reading the onboarding log of %s failed: %r", phone_number_id, exc)
        return _problem(503, "the onboarding log cannot be read now", {"Retry-After": "5"})
    if state is None:
        return _problem(404, f"no onboarding of {phone_number_id}")
    return state


async def _state(settings: Settings, phone_number_id: str) -> OnboardingState | None:
    row = await read_newest(settings, phone_number_id)
    return OnboardingState.of(row) if row is not None else None


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)

"""The onboarding of a number, step by step, resumable and idempotent.

1. with a code, exchange it for the business's token (else the token given, else COEX_GRAPH_TOKEN);
2. subscribe the app to the WABA;
3. check the number: it must be on the business app (`is_on_biz_app`) and on `CLOUD_API`;
4. request the contacts sync, then the history sync (`smb_app_data`), before the 24-hour deadline.

Each step's outcome is saved (onboarding/log.py) before the next step is taken, so running it
again resumes with the steps not yet done. A sync request is made at most once per onboarding:
the call is saved as begun *before* it is made, and a sync whose call was begun is never called
again. A process that dies between the call and saving its answer leaves the sync begun with no
request id: its outcome is unknown (the platform may or may not have taken it) and it is not sent
again; the sync's first webhook shows it was taken, and `coex status` flags a sync requested long
ago with no webhook. Two onboardings of one number that race are ordered by the log's fencing:
the later one continues from what the earlier one saved.

A number that was offboarded (`PARTNER_REMOVED`, `ACCOUNT_OFFBOARDED`) after its onboarding began
starts a new onboarding (`attempt` + 1): its syncs may be requested again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol

from pydantic import SecretStr

from graph.errors import GraphError
from onboarding.log import OnboardingTaken
from schemas.rows import OnboardingRow

WINDOW_S = 24 * 3600  # the platform's window for the sync requests, from onboarding


class Step(StrEnum):
    STARTED = "started"
    SUBSCRIBED = "subscribed"
    CHECKED = "checked"
    CONTACTS_REQUESTED = "contacts_requested"
    COMPLETE = "complete"  # both syncs requested
    REFUSED = "refused"  # the number is not on the business app and Cloud API
    FAILED = "failed"  # a Graph error stopped it; running it again resumes
    EXPIRED = "expired"  # the deadline passed before both syncs were requested


SyncType = Literal["smb_app_state_sync", "history"]


class PhoneInfo(Protocol):
    @property
    def is_on_biz_app(self) -> bool: ...

    @property
    def platform_type(self) -> str: ...


class Graph(Protocol):
    async def exchange_code(self, code: str) -> SecretStr: ...

    async def subscribe_app(self, waba_id: str, token: SecretStr) -> None: ...

    async def phone_number(self, phone_number_id: str, token: SecretStr) -> PhoneInfo: ...

    async def request_sync(self, phone_number_id: str, sync_type: SyncType, token: SecretStr) -> str: ...


class Log(Protocol):
    async def load(self) -> OnboardingRow | None: ...

    async def save(self, row: OnboardingRow) -> None: ...


@dataclass(frozen=True, slots=True)
class Request:
    waba_id: str
    phone_number_id: str
    code: SecretStr | None = None
    token: SecretStr | None = None


class Outcome(NamedTuple):
    row: OnboardingRow
    ok: bool  # both syncs requested
    message: str


class Sync(NamedTuple):
    name: str  # contacts | history: the columns' prefix
    sync_type: SyncType  # smb_app_data's


SYNCS = (Sync("contacts", "smb_app_state_sync"), Sync("history", "history"))


def fresh(request: Request, now: int, attempt: int = 1) -> OnboardingRow:
    return OnboardingRow(
        phone_number_id=request.phone_number_id,
        waba_id=request.waba_id,
        onboarded_at=now,
        deadline_at=now + WINDOW_S,
        is_on_biz_app=0,
        platform_type="",
        contacts_request_id="",
        contacts_requested_at=0,
        history_request_id="",
        history_requested_at=0,
        last_error="",
        updated_at=now,
        step=Step.STARTED,
        attempt=attempt,
        version=1,
    )


def begin(previous: OnboardingRow | None, request: Request, now: int, offboarded: bool) -> tuple[OnboardingRow, bool]:
    """The onboarding to carry on, and whether it is a new one: the previous one unless there is
    none, the number was offboarded since it began, or it belongs to another WABA."""
    if previous is None:
        return fresh(request, now), True
    if offboarded or previous.waba_id != request.waba_id:
        return fresh(request, now, previous.attempt + 1)._replace(version=previous.version + 1), True
    return previous, False


def _set(row: OnboardingRow, sync: Sync, **changes: object) -> OnboardingRow:
    """`row` with a sync's columns changed, named without their prefix (`begun_at=...`)."""
    named = {f"{sync.name}_{name}": value for name, value in changes.items()}
    return row._replace(**named)  # type: ignore[arg-type]  # the names are OnboardingRow's


def requested(row: OnboardingRow, sync: Sync) -> bool:
    return bool(getattr(row, f"{sync.name}_requested_at"))


def begun(row: OnboardingRow, sync: Sync) -> bool:
    return bool(getattr(row, f"{sync.name}_begun_at"))


def done_before(row: OnboardingRow) -> list[str]:
    """What an earlier run did, as lines for the operator."""
    lines = []
    if row.step not in (Step.STARTED,):
        lines.append(f"onboarding {row.attempt} of {row.phone_number_id} began at {_at(row.onboarded_at)}")
    if row.platform_type:
        lines.append(f"number checked: is_on_biz_app={bool(row.is_on_biz_app)}, platform_type={row.platform_type}")
    for sync in SYNCS:
        request_id = getattr(row, f"{sync.name}_request_id")
        if requested(row, sync) and request_id:
            at = _at(getattr(row, f"{sync.name}_requested_at"))
            lines.append(f"{sync.name} sync requested at {at} (request_id {request_id})")
        elif begun(row, sync):
            lines.append(
                f"{sync.name} sync request begun at {_at(getattr(row, f'{sync.name}_begun_at'))}, outcome unknown"
            )
    return lines


def _at(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


Say = Callable[[str], None]


async def run(
    request: Request,
    log: Log,
    graph: Graph,
    *,
    now: Callable[[], int],
    offboarded_since: Callable[[str, int], Awaitable[bool]],
    system_token: SecretStr | None,
    say: Say,
    mirror: Callable[[OnboardingRow], Awaitable[None]],
) -> Outcome:
    """Carry the onboarding as far as it goes; every step said, every outcome saved then mirrored."""
    previous = await log.load()
    offboarded = previous is not None and await offboarded_since(previous.waba_id, previous.onboarded_at)
    row, new = begin(previous, request, now(), offboarded)
    if new and previous is not None:
        say(f"a new onboarding (attempt {row.attempt}): the number was offboarded since the last one began")
    elif not new:
        for line in done_before(row):
            say(f"done before: {line}")

    async def save(changed: OnboardingRow) -> OnboardingRow:
        changed = changed._replace(updated_at=now(), version=changed.version + 1)
        await log.save(changed)
        await mirror(changed)
        return changed

    if new:
        row = await save(row._replace(version=row.version - 1))
    if all(requested(row, sync) for sync in SYNCS):
        return Outcome(row, True, "both syncs were requested before: nothing to do")

    token_holder: list[SecretStr] = []

    async def token() -> SecretStr:
        if not token_holder:
            token_holder.append(await _token(request, graph, system_token, say))
        return token_holder[0]

    try:
        if row.step in (Step.STARTED, Step.FAILED) and not row.platform_type:
            await graph.subscribe_app(row.waba_id, await token())
            say(f"subscribed the app to WABA {row.waba_id}")
            row = await save(row._replace(step=Step.SUBSCRIBED, last_error=""))
        if not (row.is_on_biz_app and row.platform_type == "CLOUD_API"):
            info = await graph.phone_number(row.phone_number_id, await token())
            row = row._replace(is_on_biz_app=int(info.is_on_biz_app), platform_type=info.platform_type)
            if not (info.is_on_biz_app and info.platform_type == "CLOUD_API"):
                reason = (
                    f"the number is not ready for Coexistence: is_on_biz_app={info.is_on_biz_app}, "
                    f"platform_type={info.platform_type or '(none)'} (needs true and CLOUD_API); no sync requested"
                )
                row = await save(row._replace(step=Step.REFUSED, last_error=reason))
                return Outcome(row, False, reason)
            say(f"number {row.phone_number_id} is on the business app and Cloud API")
            row = await save(row._replace(step=Step.CHECKED, last_error=""))
        for sync in SYNCS:
            if requested(row, sync):
                continue
            if begun(row, sync):
                # Begun by a process that stopped before saving the answer: never sent twice.
                at = getattr(row, f"{sync.name}_begun_at")
                say(
                    f"{sync.name} sync: a request was begun at {_at(at)} and its answer never saved; "
                    "it is not sent again (at most once): its first webhook will show it was taken"
                )
                row = await save(_set(row, sync, requested_at=at))
                continue
            if now() > row.deadline_at:
                reason = (
                    f"the 24-hour window closed at {_at(row.deadline_at)} before the {sync.name} sync was "
                    "requested: the business must offboard and complete Embedded Signup again"
                )
                row = await save(row._replace(step=Step.EXPIRED, last_error=reason))
                return Outcome(row, False, reason)
            row = await save(_set(row, sync, begun_at=now()))
            try:
                request_id = await graph.request_sync(row.phone_number_id, sync.sync_type, await token())
            except GraphError as exc:
                if not exc.outcome_unknown:
                    # The platform answered (a refusal, or a failure it did not act on): no sync was
                    # made, a later run may ask again. A lost answer keeps the call begun.
                    row = _set(row, sync, begun_at=0)
                raise
            step = Step.CONTACTS_REQUESTED if sync.name == "contacts" else Step.COMPLETE
            row = await save(
                _set(row, sync, request_id=request_id, requested_at=now())._replace(step=step, last_error="")
            )
            say(f"{sync.name} sync requested (request_id {request_id})")
    except OnboardingTaken:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        row = await save(row._replace(step=Step.FAILED, last_error=reason))
        return Outcome(row, False, reason)
    row = await save(row._replace(step=Step.COMPLETE)) if row.step != Step.COMPLETE else row
    return Outcome(row, True, "both syncs requested")


async def _token(request: Request, graph: Graph, system_token: SecretStr | None, say: Say) -> SecretStr:
    if request.token is not None:
        return request.token
    if request.code is not None:
        try:
            token = await graph.exchange_code(request.code.get_secret_value())
        except Exception as exc:
            if system_token is None:
                raise
            say(f"the code could not be exchanged ({exc}); going on with COEX_GRAPH_TOKEN")
            return system_token
        say("exchanged the signup code for the business's token")
        return token
    if system_token is not None:
        return system_token
    raise LookupError("no token: give --code or --token, or set COEX_GRAPH_TOKEN")

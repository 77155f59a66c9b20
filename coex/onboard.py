"""`coex onboard --waba-id W --phone-number-id P (--code CODE | --token TOKEN)`.

Carries the number's onboarding as far as it goes (onboarding/sequence.py), printing every step;
run again, it resumes and says what was done before. Exit 0 once both syncs are requested, 1 with
the reason otherwise. The onboarding's record is written to Kafka (the truth) and mirrored in
ClickHouse's `onboardings`, through the process that owns an embedded engine if one does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from pydantic import SecretStr

from graph.client import GraphClient
from onboarding import sequence
from onboarding.log import OnboardingLog, OnboardingTaken
from onboarding.sequence import Outcome, Request, Say
from onboarding.store import OnboardingStore
from runtime.redact import redact_url, scrub
from runtime.settings import Settings
from schemas.rows import OnboardingRow
from sinks.connect import open_engine


def request_of(args: argparse.Namespace) -> Request:
    return Request(
        waba_id=args.waba_id,
        phone_number_id=args.phone_number_id,
        code=SecretStr(args.code) if args.code else None,
        token=SecretStr(args.token) if args.token else None,
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    out = sys.stdout
    # The steps are this command's output; the Kafka client's chatter about coordinators is not.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))

    def say(line: str) -> None:
        out.write(f"coex onboard: {line}\n")
        out.flush()

    try:
        engine = open_engine(settings)
    except Exception as exc:
        where = redact_url(settings.clickhouse_url)
        sys.stderr.write(scrub(f"coex onboard: ClickHouse {where}: {exc}\n", settings.clickhouse_url))
        return 1
    store = OnboardingStore(engine, settings.clickhouse_database)
    try:
        outcome = asyncio.run(_onboard(settings, request_of(args), store, say))
    except OnboardingTaken as exc:
        sys.stderr.write(f"coex onboard: {exc}\n")
        return 1
    finally:
        engine.close()
    if not outcome.ok:
        sys.stderr.write(f"coex onboard: stopped: {outcome.message}\n")
        return 1
    say(f"done: {outcome.message}")
    return 0


async def _onboard(settings: Settings, request: Request, store: OnboardingStore, say: Say) -> Outcome:
    async def mirror(row: OnboardingRow) -> None:
        await asyncio.to_thread(store.mirror, row)

    async def offboarded_since(waba_id: str, since: int) -> bool:
        return await asyncio.to_thread(store.offboarded_since, waba_id, since)

    async with GraphClient(settings) as graph, OnboardingLog(settings, request.phone_number_id) as log:
        return await sequence.run(
            request,
            log,
            graph,
            now=lambda: int(time.time()),
            offboarded_since=offboarded_since,
            system_token=settings.graph_token,
            say=say,
            mirror=mirror,
        )

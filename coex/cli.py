"""The `coex` console script: parses arguments, reads settings once, hands off to one module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from runtime.logs import hold_back_repeats
from runtime.redact import scrub_logs
from runtime.settings import Settings

# command -> "module:function"; imported only when that command runs, so `coex sql` never
# pays for Faust and `coex worker` never for uvicorn.
COMMANDS: dict[str, str] = {
    "dev": "coex.dev:run",
    "ingest": "ingest.server:run",
    "worker": "streams.worker:run",
    "migrate": "coex.migrate:run",
    "sql": "sinks.sql_cli:run",
    "simulate": "coex.simulate:run",
    "status": "coex.status:run",
    "kafka": "coex.kafka_local:run",
    "onboard": "coex.onboard:run",
    "purge": "coex.purge:run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coex", description="WhatsApp Business Coexistence webhooks -> Kafka -> ClickHouse"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("dev", help="the whole pipeline on this machine (local Kafka, embedded ClickHouse)")
    sub.add_parser("ingest", help="the webhook ingest service alone")
    worker = sub.add_parser("worker", help="one stream worker (run N for N-way scale-out)")
    worker.add_argument("--id", dest="worker_id", default=None, help="worker id, unique per process")
    sub.add_parser("migrate", help="create or upgrade the ClickHouse schema and Kafka topics")

    onboard = sub.add_parser("onboard", help="onboard a business's number: subscribe, check, request both syncs")
    onboard.add_argument("--waba-id", required=True, help="the business's WhatsApp Business Account ID")
    onboard.add_argument("--phone-number-id", required=True, help="the business phone number's ID")
    secret = onboard.add_mutually_exclusive_group(required=True)
    secret.add_argument("--code", help="the Embedded Signup code, exchanged for the business's token")
    secret.add_argument("--token", help="a business (or system user) access token")

    sql = sub.add_parser("sql", help="run read-only SQL against the configured ClickHouse")
    sql.add_argument("query", help="one SELECT (or SHOW/DESCRIBE/EXPLAIN/WITH) statement")
    sql.add_argument(
        "--format", default="PrettyCompact", help="JSONEachRow, PrettyCompact, CSV, TSV, ... (any output format)"
    )

    sim = sub.add_parser("simulate", help="sign and post realistic Coexistence webhook traffic")
    sim.add_argument("--url", default=None, help="webhook URL (default http://127.0.0.1:$COEX_INGEST_PORT/webhook)")
    sim.add_argument("--secret", default=None, help="app secret to sign with (default $COEX_APP_SECRET)")
    sim.add_argument("--businesses", type=int, default=None, help="businesses to onboard (default 3)")
    sim.add_argument("--waba-id", default=None, help="play one business with these ids (e.g. one just onboarded)")
    sim.add_argument("--phone-number-id", default=None, help="with --waba-id: that business's phone number ID")
    sim.add_argument("--messages", type=int, default=2000, help="history messages per business (default 2000)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument("--rate", type=float, default=0.0, help="max POSTs per second, 0 for no limit")
    sim.add_argument("--concurrency", type=int, default=8, help="parallel POSTs (default 8)")
    sim.add_argument(
        "--retry-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="retry a failed delivery this long, as the platform retries (default 120)",
    )
    sim.add_argument("--expect-out", default=None, help="write the expected end state as JSON here")

    sub.add_parser("status", help="per-business sync status from ClickHouse")

    purge = sub.add_parser("purge", help="delete every row of one business, for good")
    purge.add_argument("--phone-number-id", required=True, help="the business phone number's ID")
    purge.add_argument("--yes", action="store_true", help="confirm: without it nothing is deleted")

    kafka = sub.add_parser("kafka", help="the local single-node Kafka broker (no Docker)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    return parser


def resolve(command: str) -> Callable[[Settings, argparse.Namespace], int]:
    module_name, _, func = COMMANDS[command].partition(":")
    handler: Callable[[Settings, argparse.Namespace], int] = getattr(importlib.import_module(module_name), func)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    hold_back_repeats()
    settings = Settings()
    scrub_logs(settings.clickhouse_url)
    try:
        return resolve(args.command)(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

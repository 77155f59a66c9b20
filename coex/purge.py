"""`coex purge --phone-number-id P --yes`: erase business P from every table, for good.

1. Count P's rows; none anywhere and never purged: P is unknown, exit 1 (a typo must not pass for
   a purge). None left but purged before: say so, exit 0.
2. Write the `purges` row, its `purged_at` set `settle_s` ahead when workers may be running (an
   owner serves the embedded engine, or a ClickHouse server): every worker reads `purges` every
   PURGE_POLL_S and from then on drops P's records older than purged_at (streams/logic/purged.py),
   and the rows it buffered before it knew are written within a batch's age. Waiting that long
   before deleting means those rows land before the DELETE, not after it. An embedded engine this
   process opened itself has no worker writing to it: no wait.
3. Delete P's rows (through the owner's `/purge` when it has one, sinks/purge.py), then write the
   `purges` row again with rows_deleted (same key: it replaces the first).

Left open: a worker whose writes were failing for longer than the wait (ClickHouse away) may land a
batch of P buffered before the purge after the DELETE. Running the purge again removes it.

Exit 0 done, 1 unknown business or a failure, 2 without --yes or with a malformed id.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from runtime.redact import redact_url, scrub
from runtime.settings import Settings
from schemas.rows import PurgeRow
from sinks.connect import open_engine
from sinks.engine import ClientEngine, Engine
from sinks.purge import Business, check_id, count_rows, erase, read_purges, record_purge, settle_s, waba_of
from sinks.sql_cli import one_line

EXIT_FAILED = 1
EXIT_USAGE = 2


def wait_s(engine: Engine, settings: Settings) -> float:
    """How long workers need to learn of a purge before its rows are deleted (none for an embedded
    engine opened here: no worker can be writing to it)."""
    if isinstance(engine, ClientEngine) and engine.embedded_path:
        return 0.0
    return settle_s(settings.sink_batch_age_s)


def run(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.clickhouse_url

    def say(line: str) -> None:
        sys.stderr.write(scrub(line, url) + "\n")

    if not args.yes:
        say(
            f"coex purge: deletes every row of business {args.phone_number_id} from every table, for good; "
            "add --yes to do it"
        )
        return EXIT_USAGE
    try:
        pnid = check_id(args.phone_number_id, "--phone-number-id")
    except ValueError as exc:
        say(f"coex purge: {exc}")
        return EXIT_USAGE
    try:
        engine = open_engine(settings)
    except Exception as exc:
        say(f"coex purge: cannot open ClickHouse {redact_url(url)}: {one_line(exc)}")
        return EXIT_FAILED
    try:
        return _purge(engine, settings, pnid, say)
    except Exception as exc:
        say(f"coex purge: failed: {one_line(exc)}")
        return EXIT_FAILED
    finally:
        engine.close()


def _purge(engine: Engine, settings: Settings, pnid: str, say: Callable[[str], None]) -> int:
    business = Business(pnid, waba_of(engine, pnid))
    if not any(count_rows(engine, business).values()):
        earlier = [row.purged_at for row in read_purges(engine) if row.phone_number_id == pnid]
        if not earlier:
            say(f"coex purge: no row of phone_number_id {pnid} in any table: unknown business, nothing purged")
            return EXIT_FAILED
        sys.stdout.write(f"coex purge: nothing of {pnid} left; purged at {_when(max(earlier))}\n")
        return 0
    wait = wait_s(engine, settings)
    purged_at = math.ceil(time.time() + wait)
    record_purge(engine, PurgeRow(pnid, purged_at, 0, business.waba_id))
    if wait:
        sys.stdout.write(f"coex purge: {pnid}: waiting {wait:.0f} s for the workers to stop writing it\n")
        sys.stdout.flush()
        time.sleep(max(purged_at - time.time(), 0.0))
    deleted = erase(engine, business)
    total = sum(deleted.values())
    record_purge(engine, PurgeRow(pnid, purged_at, total, business.waba_id))
    waba = f" (WABA {business.waba_id})" if business.waba_id else ""
    lines = [f"coex purge: {pnid}{waba} purged at {_when(purged_at)}; rows deleted:"]
    lines += [f"  {table:<18}{n:>10}" for table, n in deleted.items()]
    lines.append(f"  {'total':<18}{total:>10}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _when(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

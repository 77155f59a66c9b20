"""End to end: ingest, local broker, one worker, embedded ClickHouse, all on this machine.

    .venv/bin/python bench/e2e.py --messages 1000000 [--write]

One business's history of N messages (chunks of 2,000-5,000, shuffled, media follow-ups,
contacts, echoes, 10% redeliveries) from `coex simulate`'s generator, built and signed before
the clock starts. Measured in one run:

1. baseline: the same bodies split, normalized and written by the BatchWriter straight into a
   fresh embedded engine, in one process, without Kafka or Faust: every row normalization gives
   (messages, media follow-ups, contacts, statuses with their carry into `messages`, reported
   errors, account events; not the stream's `history_sync` state); once before the pipeline and
   once after, as the speed of a shared machine drifts by a third within the hour: the ratio is
   to the mean of the two rates;
2. pipeline: `coex ingest` + `coex worker` as processes on a broker of its own (deploy/kafka-local.sh
   with a fresh data folder and free ports, stopped at the end: a broker holding the topics of many
   earlier runs costs every client time on metadata), or on `--kafka BOOTSTRAP`; the bodies
   POSTed at 16 concurrent connections (bench/loadgen.py, or --poster aiohttp); from the first POST until every
   message is visible under FINAL. Reports ingest POSTs/s, end-to-end messages/s and the
   worker's peak resident memory (VmHWM; with the helper processes that parse history chunks for
   it, the sum of their peaks: an upper bound of what they held at once). The worker's CPU
   includes its helpers'.

    .venv/bin/python bench/e2e.py --messages 1000000 --repeat 5

Five pipeline runs, each between two baselines (the one after a run is the next run's before), and
the medians: runs made minutes apart on a shared machine differ by a third.

    .venv/bin/python bench/e2e.py --messages 1000000 --against REV [--rounds 3]

A/B of the worker end to end: no baseline; the pipeline runs `--rounds` times with the worker of
the code at REV (a git revision, exported to a temporary folder) and as many with the working
tree's, in turns, each on a fresh broker (the ingest is the working tree's in both). The machine's
speed drifts too much within the hour for runs made apart to compare; turns side by side do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import post_prepared, prepare  # noqa: E402
from coex.simulator.poster import PostOptions, post_all  # noqa: E402
from coex.simulator.scenario import Delivery, Simulation  # noqa: E402
from runtime.settings import Settings  # noqa: E402

SECRET = "bench-secret"


def export(revision: str, into: Path) -> Path:
    """The tree of `revision` as plain files (no worktree left behind)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(messages: int) -> tuple[list[Delivery], int]:
    sim = Simulation(1, messages, seed=42)
    deliveries = list(sim.deliveries())
    return deliveries, sim.expected.businesses[sim.businesses[0].phone_number_id].message_count


def _baseline(bodies: list[bytes], path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from runtime.memory import bound_memory
    from schemas.normalize import normalize_change
    from schemas.routing import decode_record, split_delivery
    from sinks.connect import open_engine
    from sinks.migrate import apply_migrations
    from sinks.writer import BatchWriter

    bound_memory()  # the worker's memory policy, so the two differ only by Kafka and faust
    settings = Settings(clickhouse_url=f"chdb://{path}", clickhouse_database="bench")
    engine = open_engine(settings)
    apply_migrations(engine, "bench")
    writer = BatchWriter(engine, batch_rows=50_000, batch_age_s=3600, retry_max_s=5)

    async def go() -> None:
        for body in bodies:
            for record in split_delivery(body, "d", time.time()):
                norm = normalize_change(decode_record(record.value))
                for chunk in norm.history_chunks:
                    writer.add("messages", chunk.messages)
                for rows, table in ((norm.messages, "messages"), (norm.media_followups, "messages"),
                                    (norm.contacts, "contacts"), (norm.errors, "webhook_errors"),
                                    (norm.history_errors, "webhook_errors"),
                                    (norm.account_events, "account_events")):  # fmt: skip
                    if rows:
                        writer.add(table, rows)
                writer.add_statuses(norm.statuses)
                if writer.should_flush():
                    await writer.flush()
        await writer.flush()

    start = time.perf_counter()
    asyncio.run(go())
    n = engine.query_rows("SELECT count() FROM bench.messages FINAL")[0][0]
    out.put((time.perf_counter() - start, int(n)))
    engine.close()


def baseline(bodies: list[bytes]) -> tuple[float, int]:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        proc = ctx.Process(target=_baseline, args=(bodies, tmp + "/ch", queue))
        proc.start()
        seconds, rows = queue.get()
        proc.join()
    return seconds, rows


def timed_baseline(deliveries: list[Delivery], when: str) -> float:
    seconds, rows = baseline([d.body for d in deliveries])
    sys.stderr.write(f"baseline {when}: {rows} rows in {seconds:.1f} s = {rows / seconds:,.0f} msgs/s\n")
    return rows / seconds


def status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (VmHWM: peak resident, VmRSS: resident now), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemorySampler(threading.Thread):
    """Samples the worker's resident memory and its embedded engine's own tracked memory (through
    the worker's SQL endpoint) twice a second: how much of the peak is ClickHouse, how much Python."""

    def __init__(self, pid: int, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.pid, self.settings = pid, settings
        self.peak = (0.0, 0.0, 0.0)  # (worker RSS, engine MemoryTracking, of which merges) at the RSS peak
        self.engine_peak = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        from sinks.client import parse_url
        from sinks.remote import RemoteEngine, connect_owner

        path = parse_url(self.settings.clickhouse_url).path
        engine: RemoteEngine | None = None
        while not self.stopped.wait(0.5):
            try:
                # Only through the worker's endpoint: opening the path here would take it from the worker.
                engine = engine or connect_owner(path, self.settings.clickhouse_database)
                if engine is None:
                    continue
                tracked = dict(engine.query_rows(
                    "SELECT metric, value FROM system.metrics "
                    "WHERE metric IN ('MemoryTracking', 'MergesMutationsMemoryTracking')"
                ))  # fmt: skip
                rss = family_mb(with_children(self.pid), "VmRSS")
            except Exception:
                continue
            ch = tracked.get("MemoryTracking", 0) / 2**20
            self.engine_peak = max(self.engine_peak, ch)
            if rss > self.peak[0]:
                self.peak = (rss, ch, tracked.get("MergesMutationsMemoryTracking", 0) / 2**20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_children(pid: int) -> list[int]:
    """`pid` and its live child processes (the worker's helper, streams/helper.py)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return [pid, *children]


def family_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def family_mb(pids: list[int], field: str) -> float:
    """The sum over the processes: for VmHWM, an upper bound of their peak together."""
    return sum(status_mb(pid, field) for pid in pids)


@contextlib.contextmanager
def fresh_broker(tmp: Path) -> Iterator[str]:
    """A single-node broker with empty storage on free ports; the jars are the project's."""
    script = str(ROOT / "deploy" / "kafka-local.sh")
    subprocess.run(["bash", script, "fetch"], check=True)
    home = tmp / "kafka"
    home.mkdir()
    (home / "libs").symlink_to(ROOT / ".coex" / "kafka" / "libs")
    bootstrap = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "COEX_KAFKA_HOME": str(home), "COEX_KAFKA_BOOTSTRAP": bootstrap,
           "COEX_KAFKA_CONTROLLER_PORT": str(free_port())}  # fmt: skip
    subprocess.run(["bash", script, "start"], env=env, check=True)
    try:
        yield bootstrap
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False)


def wait_ready(url: str) -> None:
    """Until the ingest behind webhook `url` answers /readyz (Kafka reachable)."""
    import httpx

    for _ in range(300):
        try:
            if httpx.get(url.replace("/webhook", "/readyz"), timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("ingest never became ready")


def pipeline(
    deliveries: list[Delivery],
    expected_messages: int,
    tmp: Path,
    bootstrap: str,
    poster: str,
    worker_code: Path | None = None,
) -> dict[str, float]:
    """One run; `worker_code`: a tree whose worker runs instead of this one's."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(
        COEX_KAFKA_BOOTSTRAP=bootstrap,
        COEX_CLICKHOUSE_URL=f"chdb://{tmp / 'ch'}",
        COEX_DATA_DIR=str(tmp / ".coex"),
        COEX_TOPIC_PREFIX=f"bench{run}.",
        COEX_WORKER_GROUP=f"bench-{run}",
        COEX_APP_SECRET=SECRET,
        COEX_INGEST_PORT=str(free_port()),
        COEX_SQL_PORT=str(free_port()),
        COEX_WORKER_WEB_PORT=str(free_port()),
    )
    coex = [sys.executable, "-m", "coex.cli", "--log-level", "WARNING"]
    subprocess.run([*coex, "migrate"], env=env, check=True, cwd=tmp, stdout=sys.stderr)  # the report alone on stdout
    logs = open(tmp / "procs.log", "wb")  # noqa: SIM115
    worker_env = {**env, "PYTHONPATH": str(worker_code)} if worker_code else env  # ahead of the editable install
    worker = subprocess.Popen([*coex, "worker"], env=worker_env, cwd=tmp, stdout=logs, stderr=logs)
    ingest = subprocess.Popen([*coex, "ingest"], env=env, cwd=tmp, stdout=logs, stderr=logs)
    settings = Settings(
        clickhouse_url=env["COEX_CLICKHOUSE_URL"], clickhouse_database="coex", sql_port=int(env["COEX_SQL_PORT"])
    )
    try:
        url = f"http://127.0.0.1:{env['COEX_INGEST_PORT']}/webhook"
        wait_ready(url)
        options = PostOptions(url=url, secret=SECRET.encode(), concurrency=16)
        requests = prepare(url, SECRET.encode(), (d.body for d in deliveries)) if poster == "lean" else []
        sampler = MemorySampler(worker.pid, settings)
        sampler.start()
        start = time.perf_counter()
        broker_pid_file = tmp / "kafka" / "kafka.pid"
        broker_pid = int(broker_pid_file.read_text()) if broker_pid_file.exists() else None
        broker_cpu = cpu_seconds(broker_pid) if broker_pid else 0.0
        poster_cpu = time.process_time()
        if poster == "lean":
            lean = asyncio.run(post_prepared(url, requests, options.concurrency))
            posts, failed = lean.posts, lean.failed
        else:
            stats = asyncio.run(post_all(iter(deliveries), options, lambda _s: None))
            posts, failed = stats.webhooks, stats.failed
        poster_cpu = time.process_time() - poster_cpu
        worker_cpu_posting = family_cpu_seconds(with_children(worker.pid))
        broker_cpu = cpu_seconds(broker_pid) - broker_cpu if broker_pid else float("nan")
        posted = time.perf_counter() - start
        ingest_cpu = cpu_seconds(ingest.pid)
        from sinks.connect import open_engine

        engine = None
        while True:
            try:
                engine = engine or open_engine(settings, create_database=False)
                # The worker answers these queries: a FINAL count over a million rows twice a second
                # would take CPU and memory from it. Rows as stored (duplicates included) are counted
                # from part metadata; FINAL only once they are enough.
                n = int(engine.query_rows("SELECT count() FROM messages")[0][0])
                if n >= expected_messages:
                    n = int(engine.query_rows("SELECT count() FROM messages FINAL")[0][0])
            except Exception:
                n = -1
            if n >= expected_messages:
                break
            if time.perf_counter() - start > 3600:
                raise SystemExit(f"timed out: {n} of {expected_messages} rows visible")
            time.sleep(0.5)
        total = time.perf_counter() - start
        workers = with_children(worker.pid)
        peak = family_mb(workers, "VmHWM")
        worker_cpu = family_cpu_seconds(workers)
        sampler.stopped.set()
    finally:
        for proc in (ingest, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (ingest, worker):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "posts": posts,
        "failed": failed,
        "post_seconds": posted,
        "posts_per_s": posts / posted,
        "e2e_seconds": total,
        "e2e_msgs_per_s": expected_messages / total,
        "worker_peak_mb": peak,
        "sampled_peak_mb": sampler.peak[0],
        "engine_at_peak_mb": sampler.peak[1],
        "merges_at_peak_mb": sampler.peak[2],
        "engine_peak_mb": sampler.engine_peak,
        "worker_cpu_s": worker_cpu,
        "ingest_cpu_s": ingest_cpu,
        "poster_cpu_s": poster_cpu,
        "broker_cpu_s": broker_cpu,
        "worker_cpu_posting_s": worker_cpu_posting,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--write", action="store_true", help="record the figures in bench/RESULTS.md")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="use this broker instead of starting a fresh one")
    parser.add_argument(
        "--poster", choices=("lean", "aiohttp"), default="lean",
        help="the load generator: bench/loadgen.py (default) or `coex simulate`'s aiohttp poster",
    )  # fmt: skip
    parser.add_argument("--against", metavar="REV", help="A/B of the worker: REV's against the working tree's")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: runs of each side")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="N pipeline runs, each between two baselines; their figures and medians",
    )  # fmt: skip
    args = parser.parse_args()
    if args.against and args.kafka:
        parser.error("--against runs each turn on a fresh broker of its own; leave out --kafka")
    if args.repeat > 1 and (args.against or args.write):
        parser.error("--repeat reports several runs: leave out --against and --write")

    t0 = time.perf_counter()
    deliveries, expected = build(args.messages)
    mb = sum(len(d.body) for d in deliveries) / 1e6
    sys.stderr.write(f"built {len(deliveries)} webhooks, {expected} messages, {mb:.0f} MB "
                     f"in {time.perf_counter() - t0:.1f} s\n")  # fmt: skip
    if args.against:
        sys.stdout.write(ab_report(args, deliveries, expected) + "\n")
        return 0
    if args.repeat > 1:
        sys.stdout.write(repeat_report(args, deliveries, expected) + "\n")
        return 0

    rates = [timed_baseline(deliveries, "before")]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bootstrap = args.kafka or stack.enter_context(fresh_broker(tmp))
        res = pipeline(deliveries, expected, tmp, bootstrap, args.poster)
    rates.append(timed_baseline(deliveries, "after"))
    base_rate = sum(rates) / len(rates)
    lines = [
        f"`.venv/bin/python bench/e2e.py --messages {args.messages}` ({time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}). One business, {expected:,} messages "
        f"in {len(deliveries):,} webhooks ({mb:.0f} MB, 10% redeliveries).",
        "",
        "| what | figure |",
        "| --- | ---: |",
        f"| ingest: POSTs accepted/s (16 connections, while the worker runs) | {res['posts_per_s']:,.0f} |",
        f"| end to end: first POST to every row visible under FINAL | {res['e2e_seconds']:.1f} s |",
        f"| end to end: messages/s | {res['e2e_msgs_per_s']:,.0f} |",
        f"| worker peak resident memory (its helper processes' added: the sum of the peaks) | "
        f"{res['worker_peak_mb']:,.0f} MB |",
        f"| worker memory at the highest sample (every 0.5 s): resident (helpers included) / embedded engine's own "
        f"(MemoryTracking) / of which merges | {res['sampled_peak_mb']:,.0f} MB / {res['engine_at_peak_mb']:,.0f} MB"
        f" / {res['merges_at_peak_mb']:,.0f} MB |",
        f"| embedded engine's own memory, highest sample | {res['engine_peak_mb']:,.0f} MB |",
        f"| posting took (first to last POST answered) | {res['post_seconds']:.1f} s |",
        f"| CPU while posting: ingest / worker / broker / poster | {res['ingest_cpu_s']:.1f} s / "
        f"{res['worker_cpu_posting_s']:.1f} s / {res['broker_cpu_s']:.1f} s / {res['poster_cpu_s']:.1f} s |",
        f"| CPU of the worker and its helpers, start to end | {res['worker_cpu_s']:.1f} s |",
        f"| baseline, same run, before / after the pipeline: normalize + BatchWriter into chdb, one process, "
        f"no Kafka | {rates[0]:,.0f} / {rates[1]:,.0f} msgs/s |",
        f"| pipeline / baseline (the mean of the two) | {res['e2e_msgs_per_s'] / base_rate:.2f} |",
    ]
    report = "\n".join(lines)
    sys.stdout.write(report + "\n")
    if res["failed"]:
        sys.stderr.write(f"{res['failed']:.0f} webhooks failed\n")
    if args.write:
        write_section(ROOT / "bench" / "RESULTS.md", "## End to end (issues 6 and 7)", report)
    return 0


def repeat_report(args: argparse.Namespace, deliveries: list[Delivery], expected: int) -> str:
    """`args.repeat` pipeline runs, each on a fresh broker, between baselines (one baseline after a run
    is the next one's before): a shared machine's speed drifts within the hour, a median of runs less."""
    lines = [
        f"`.venv/bin/python bench/e2e.py --messages {args.messages} --repeat {args.repeat}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}), "
        f"{expected:,} messages:",
        "",
        "| run | messages/s | baseline before / after | pipeline / baseline | posting took | "
        "CPU while posting: ingest / worker / broker / poster | worker peak |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rates, ratios = [], []
    before = timed_baseline(deliveries, "before run 1")
    for run in range(1, args.repeat + 1):
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            bootstrap = args.kafka or stack.enter_context(fresh_broker(tmp))
            res = pipeline(deliveries, expected, tmp, bootstrap, args.poster)
        after = timed_baseline(deliveries, f"after run {run}")
        rate = res["e2e_msgs_per_s"]
        ratio = rate / ((before + after) / 2)
        rates.append(rate)
        ratios.append(ratio)
        progress(
            lines,
            f"| {run} | {rate:,.0f} | {before:,.0f} / {after:,.0f} | {ratio:.2f} | {res['post_seconds']:.1f} s | "
            f"{res['ingest_cpu_s']:.1f} / {res['worker_cpu_posting_s']:.1f} / {res['broker_cpu_s']:.1f} / "
            f"{res['poster_cpu_s']:.1f} s | {res['worker_peak_mb']:,.0f} MB |",
        )
        before = after
    lines += [
        "",
        f"median: {statistics.median(rates):,.0f} messages/s, pipeline / baseline {statistics.median(ratios):.2f} "
        f"(lowest {min(ratios):.2f}, highest {max(ratios):.2f})",
    ]
    return "\n".join(lines)


def ab_report(args: argparse.Namespace, deliveries: list[Delivery], expected: int) -> str:
    """Runs of the worker of `args.against` and of the working tree in turns; their figures."""
    lines = [
        f"`.venv/bin/python bench/e2e.py --messages {args.messages} --against {args.against} --rounds {args.rounds}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}), "
        f"{expected:,} messages:",
        "",
        "| turn | worker | messages/s | posting took | after the last POST | worker CPU | worker peak |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rates: dict[str, list[float]] = {args.against: [], "working tree": []}
    with tempfile.TemporaryDirectory() as name:
        other = export(args.against, Path(name) / "a")
        for turn in range(1, args.rounds + 1):
            for side, code in ((args.against, other), ("working tree", None)):
                with tempfile.TemporaryDirectory() as run_dir:
                    tmp = Path(run_dir)
                    with fresh_broker(tmp) as bootstrap:
                        res = pipeline(deliveries, expected, tmp, bootstrap, args.poster, code)
                rates[side].append(res["e2e_msgs_per_s"])
                progress(
                    lines,
                    f"| {turn} | {side} | {res['e2e_msgs_per_s']:,.0f} | {res['post_seconds']:.1f} s | "
                    f"{res['e2e_seconds'] - res['post_seconds']:.1f} s | {res['worker_cpu_s']:.1f} s | "
                    f"{res['worker_peak_mb']:,.0f} MB |",
                )
    new, old = rates["working tree"], rates[args.against]
    faster = sum(n > o for n, o in zip(new, old, strict=True))
    lines += [
        "",
        f"working tree / {args.against}: {statistics.median(new) / statistics.median(old):.2f}x the median rate, "
        f"faster in {faster} of {len(new)} turns",
    ]
    return "\n".join(lines)


def progress(lines: list[str], line: str) -> None:
    """A table row of the report, shown as soon as measured (a report takes many minutes)."""
    sys.stderr.write(line + "\n")
    lines.append(line)


def write_section(path: Path, heading: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + text[end + 1 :] if end >= 0 else text[:start]
    path.write_text(text.rstrip("\n") + f"\n\n{heading}\n\n{body}\n")


if __name__ == "__main__":
    sys.exit(main())

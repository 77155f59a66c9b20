"""The stream worker alone, A/B: one pre-filled topic drained in turns by two versions of the code.

    .venv/bin/python bench/worker.py --messages 1000000 --against HEAD [--rounds 2]

The end-to-end bench shares two cores among five processes on machines whose speed moves by half
within the hour, so a change to the worker worth a few per cent drowns in the noise between runs.
Here the history of `bench/e2e.py` is POSTed once through `coex ingest` into a fresh broker; then,
in alternating turns, a worker of the code at `--against` (a git revision, exported to a temporary
folder) and a worker of this working tree each read the whole of it under a consumer group and
into an embedded ClickHouse of their own, until every message is visible under FINAL. Reports each
turn's drain time, the worker's CPU and peak memory, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import (  # noqa: E402
    SECRET,
    build,
    export,
    family_cpu_seconds,
    family_mb,
    free_port,
    fresh_broker,
    wait_ready,
    with_children,
)
from bench.loadgen import post_prepared, prepare  # noqa: E402
from runtime.settings import Settings  # noqa: E402


def drain(source: Path, env: dict[str, str], tmp: Path, expected: int) -> dict[str, float]:
    """Run one worker of the code in `source` over the whole topic; its figures."""
    turn = uuid.uuid4().hex[:8]
    ch = tmp / f"ch-{turn}"
    env = {
        **env,
        "PYTHONPATH": str(source),  # ahead of the editable install of this tree
        "COEX_CLICKHOUSE_URL": f"chdb://{ch}",
        "COEX_WORKER_GROUP": f"bench-{turn}",
        "COEX_DATA_DIR": str(tmp / f"data-{turn}"),
        "COEX_SQL_PORT": str(free_port()),
        "COEX_WORKER_WEB_PORT": str(free_port()),
    }
    coex = [sys.executable, "-m", "coex.cli", "--log-level", "WARNING"]
    subprocess.run([*coex, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
    settings = Settings(clickhouse_url=env["COEX_CLICKHOUSE_URL"], clickhouse_database="coex")
    with open(tmp / f"worker-{turn}.log", "wb") as log:
        start = time.perf_counter()
        worker = subprocess.Popen([*coex, "worker"], env=env, cwd=tmp, stdout=log, stderr=log)
        try:
            from sinks.connect import open_engine

            while not (ch / ".coex-owner.json").exists():  # only through the worker once it serves
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited {worker.returncode}; see {log.name}")
                time.sleep(0.2)
            engine = open_engine(settings, create_database=False)
            while True:
                n = int(engine.query_rows("SELECT count() FROM messages")[0][0])
                if n >= expected and int(engine.query_rows("SELECT count() FROM messages FINAL")[0][0]) >= expected:
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited {worker.returncode}; see {log.name}")
                time.sleep(0.25)
            seconds = time.perf_counter() - start
            workers = with_children(worker.pid)  # the helper process included
            figures = {"seconds": seconds, "cpu": family_cpu_seconds(workers), "peak_mb": family_mb(workers, "VmHWM")}
        finally:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--against", default="HEAD", help="git revision of the A side (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--set", action="append", default=[], metavar="COEX_X=VALUE",
        help="a setting for the working tree's worker only (repeatable): A/B of settings, same code",
    )  # fmt: skip
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)

    deliveries, expected = build(args.messages)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        sides = {args.against: export(args.against, tmp / "a"), "working tree": ROOT}
        with fresh_broker(tmp) as bootstrap:
            env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
            env.update(
                COEX_KAFKA_BOOTSTRAP=bootstrap,
                COEX_TOPIC_PREFIX="bench.",
                COEX_APP_SECRET=SECRET,
                COEX_INGEST_PORT=str(free_port()),
                COEX_CLICKHOUSE_URL=f"chdb://{tmp / 'ch-ingest'}",
                COEX_DATA_DIR=str(tmp / "data-ingest"),
            )
            coex = [sys.executable, "-m", "coex.cli", "--log-level", "WARNING"]
            subprocess.run([*coex, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
            url = f"http://127.0.0.1:{env['COEX_INGEST_PORT']}/webhook"
            requests = prepare(url, SECRET.encode(), (d.body for d in deliveries))
            with open(tmp / "ingest.log", "wb") as log:
                ingest = subprocess.Popen([*coex, "ingest"], env=env, cwd=tmp, stdout=log, stderr=log)
                try:
                    wait_ready(url)
                    stats = asyncio.run(post_prepared(url, requests, 16))
                finally:
                    ingest.terminate()
                    ingest.wait(60)
            if stats.failed:
                raise SystemExit(f"{stats.failed} POSTs failed")
            sys.stderr.write(f"{stats.posts} webhooks in the topic ({expected:,} messages)\n")
            turns: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side, source in sides.items():
                    figures = drain(source, {**env, **extra} if source == ROOT else env, tmp, expected)
                    turns[side].append(figures)
                    sys.stderr.write(
                        f"  {side}: {figures['seconds']:.1f} s, worker CPU {figures['cpu']:.1f} s, "
                        f"peak {figures['peak_mb']:,.0f} MB\n"
                    )
    flags = "".join(f" --set {item}" for item in args.set)
    print(f"`.venv/bin/python bench/worker.py --messages {args.messages} --against {args.against} "
          f"--rounds {args.rounds}{flags}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores), "
          f"{expected:,} messages:\n")  # fmt: skip
    print("| code | drain, median | messages/s | worker CPU, median | peak memory, highest |")
    print("| --- | ---: | ---: | ---: | ---: |")
    medians = {}
    for side, runs in turns.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        medians[side] = seconds
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        print(f"| {side} | {seconds:.1f} s | {expected / seconds:,.0f} | {cpu:.1f} s | {peak:,.0f} MB |")
    a, b = medians.values()
    print(f"\nworking tree / {args.against}: {a / b:.2f}x the rate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

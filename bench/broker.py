"""The local broker's CPU under the JVM options of deploy/kafka-local.sh, against the JVM's defaults.

    .venv/bin/python bench/broker.py [--records 150000]

For each set of options, in one run: a fresh single-node broker (deploy/kafka-local.sh with its own
folder and free ports), then the same work a history import gives it: records of ~6 KB (JSON-like,
zstd, acks=all, idempotent, in groups of 64, as the ingest sends them) into a topic of 6
partitions, then read back by one consumer. Reports the broker's CPU seconds for that work (its
start excluded) and for its start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "kafka-local.sh"
OPTIONS = {
    "JVM defaults (G1, tiered C1+C2)": "-XX:+UseG1GC",
    "kafka-local.sh default (serial GC, C1 only)": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def values() -> list[bytes]:
    message = b'{"from":"16505551234","id":"wamid.%06d","timestamp":"1739230955","type":"text","text":{"body":"%s"}},'
    return [
        b"[" + b"".join(message % (i * 100 + j, os.urandom(24).hex().encode()) for j in range(40)) + b"{}]"
        for i in range(50)
    ]


async def work(bootstrap: str, records: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("bench", 6, 1)])
    finally:
        await admin.close()
    payloads = values()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, compression_type="zstd", linger_ms=2
    )
    await producer.start()
    try:
        pending = []
        for i in range(records):
            pending.append(await producer.send("bench", payloads[i % len(payloads)], key=str(i % 12).encode()))
            if len(pending) == 64:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "bench", bootstrap_servers=bootstrap, group_id="bench", auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        read = 0
        while read < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            read += sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()


def measure(options: str, records: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "kafka"
        home.mkdir()
        (home / "libs").symlink_to(ROOT / ".coex" / "kafka" / "libs")
        env = {
            **os.environ,
            "COEX_KAFKA_HOME": str(home),
            "COEX_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "COEX_KAFKA_CONTROLLER_PORT": str(free_port()),
            "COEX_KAFKA_JVM_OPTS": options,
        }
        subprocess.run(["bash", str(SCRIPT), "start"], env=env, check=True, capture_output=True)
        try:
            pid = int((home / "kafka.pid").read_text())
            started = cpu_seconds(pid)
            wall = time.perf_counter()
            asyncio.run(work(env["COEX_KAFKA_BOOTSTRAP"], records))
            return cpu_seconds(pid) - started, time.perf_counter() - wall, started
        finally:
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=150_000)
    args = parser.parse_args()
    subprocess.run(["bash", str(SCRIPT), "fetch"], check=True)
    command = f"`.venv/bin/python bench/broker.py --records {args.records}`"
    print(f"{command} ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print("\n| JVM options | broker CPU for the work | wall | broker CPU to start |\n| --- | ---: | ---: | ---: |")
    for name, options in OPTIONS.items():
        cpu, wall, start = measure(options, args.records)
        print(f"| {name}: `{options}` | {cpu:.1f} s | {wall:.1f} s | {start:.1f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

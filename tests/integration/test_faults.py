"""Fault tests: processes of the pipeline killed, frozen and starved by the test, each ending in exactly
the expected rows under FINAL (nothing acknowledged lost, nothing counted twice).

Against the real broker (the session's, or a throwaway one of the test's own where the broker itself
is the fault) and the real embedded ClickHouse, with `coex ingest` and `coex worker` as processes.
What test_streams.py and test_ingest_outage.py already cover (a worker killed mid-import and
restarted, workers joining and leaving, a Kafka outage seen by the worker or by the ingest alone) is
not repeated here. The short versions run in CI; `COEX_SOAK=1` runs the longer soaks. Each test
prints a `FIGURES` line (lost, duplicated, time to recover) that RELIABILITY.md quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.integration.broker_kit import Broker
from tests.integration.ingest_kit import IngestProcess, signed
from tests.integration.soak import soak
from tests.integration.test_streams import (
    PARTITIONS,
    REVOKING,
    WAIT_S,
    Cluster,
    _expected,
    _first_rows,
    _produce,
    _rebalance_started,
    _state,
    _wait_for,
)
from tests.unit.streams.test_processor import (
    MESSAGE_COLUMNS,
    Scenario,
    add_echoes,
    build_scenario,
    deliveries,
    records,
)
from topics.catalog import INGEST_TOPICS

ECHO_ID = re.compile(rb"wamid\.echo\d+")
SESSION_TIMEOUT_S = 10


def _figures(test: str, **figures: object) -> None:
    print(f"FIGURES {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _cluster(bootstrap: str, tmp_path: Path, name: str, engine_path: Path | None = None) -> Cluster:
    return Cluster(bootstrap, f"{name}.", f"{name}-group", engine_path or tmp_path / "clickhouse", tmp_path)


@pytest.fixture
def stopped() -> Iterator[list[Cluster]]:
    """Clusters whose workers and engine owner are stopped after the test, whatever it ended in."""
    clusters: list[Cluster] = []
    yield clusters
    for cluster in clusters:
        for proc in cluster.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a frozen worker cannot stop
            cluster.stop(proc)
        cluster.stop_owner()


def _echoes(n: int) -> Scenario:
    """n webhooks of one message each: every acknowledged webhook is a row of its own to look for."""
    scenario = Scenario()
    add_echoes(scenario, range(n))
    return scenario


def _messages(engine: Any) -> dict[str, tuple[Any, ...]]:
    cols = ", ".join(MESSAGE_COLUMNS)
    rows = engine.query_rows(f"SELECT message_id, {cols} FROM messages FINAL ORDER BY message_id")
    return {r[0]: tuple(r[1:]) for r in rows}


def _wait_messages(cluster: Cluster, expected: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    engine = cluster.engine()
    deadline = time.monotonic() + WAIT_S
    found: dict[str, tuple[Any, ...]] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the tables appear with the worker's migrations
            found = _messages(engine)
        if found == expected:
            return found
        time.sleep(0.5)
    return found


def _stored_copies(cluster: Cluster, table: str) -> tuple[int, int]:
    """(rows under FINAL, rows stored before merges): the second counts redelivered copies."""
    engine = cluster.engine()
    final = engine.query_rows(f"SELECT count() FROM {table} FINAL")[0][0]
    stored = engine.query_rows(f"SELECT count() FROM {table}")[0][0]
    return final, stored


def _metric(cluster: Cluster, name: str, sample: str) -> float:
    """The sum of a worker's `sample` lines (any labels) on its /metrics page; 0 before it serves one."""
    try:
        page = httpx.get(f"http://127.0.0.1:{cluster.web_ports[name]}/metrics", timeout=10).text
    except httpx.TransportError:
        return 0.0
    total = 0.0
    for line in page.splitlines():
        if line.startswith((f"{sample} ", f"{sample}{{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _echo_ids(bootstrap: str, topic: str) -> Counter[str]:
    """How often each echo's message id is on `topic`, read from the start to its end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(WAIT_S):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for recs in (await consumer.getmany(timeout_ms=500)).values():
                    for rec in recs:
                        assert rec.value is not None
                        seen.update(m.decode() for m in set(ECHO_ID.findall(rec.value)))
    finally:
        await consumer.stop()
    return seen


async def _committed_to_the_end(cluster: Cluster) -> bool:
    """The group committed every input record: everything read was written to ClickHouse."""
    partitions = [TopicPartition(cluster.prefix + t, p) for t in INGEST_TOPICS for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=cluster.group, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        for tp, end in ends.items():
            if end and (await consumer.committed(tp) or 0) < end:
                return False
        return True
    finally:
        await consumer.stop()


async def _post_until_200(client: httpx.AsyncClient, body: bytes, within_s: float = WAIT_S) -> int:
    """As the platform does: send again until 200. Returns the refusals and failures seen."""
    deadline = time.monotonic() + within_s
    refused = 0
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200:
                return refused
        refused += 1
        assert time.monotonic() < deadline, f"no 200 within {within_s} s"
        await asyncio.sleep(0.5)


# 1. The ingest killed with requests in flight.


async def _post_until_killed(
    ingest: IngestProcess, bodies: list[bytes], todo: list[int], kill_after: int, senders: int
) -> tuple[set[int], int]:
    """Post `todo` concurrently and SIGKILL the ingest once `kill_after` of them got 200: the
    acknowledged ones, and how many requests were in flight then (no answer)."""
    queue = list(todo)
    acked: set[int] = set()
    unanswered = 0
    killed = False

    async def send(client: httpx.AsyncClient) -> None:
        nonlocal unanswered, killed
        while queue and not killed:
            i = queue.pop(0)
            try:
                r = await client.post("/webhook", content=bodies[i], headers=signed(bodies[i]))
            except httpx.TransportError:
                unanswered += 1
                continue
            if r.status_code == 200:
                acked.add(i)
            if len(acked) >= kill_after and not killed:
                killed = True
                ingest.kill()  # the other senders' requests are in flight now

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(base_url=ingest.url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(send(client) for _ in range(senders)))
    assert killed, "every webhook was acknowledged before the kill: send more"
    return acked, unanswered


async def _ingest_killed_in_flight(
    bootstrap: str, tmp_path: Path, name: str, stopped: list[Cluster], n: int, kills: int
) -> None:
    scenario = _echoes(n)
    cluster = _cluster(bootstrap, tmp_path, name)
    stopped.append(cluster)
    ingest = IngestProcess(bootstrap, cluster.prefix, tmp_path / "ingest.log")
    try:
        cluster.start("w1")
        ingest.start()
        await ingest.ready()
        todo = list(range(n))
        acked_before_kill: set[int] = set()
        in_flight = 0
        for k in range(kills):
            acked, unanswered = await _post_until_killed(
                ingest, scenario.bodies, todo, kill_after=n // (kills + 1), senders=16
            )
            acked_before_kill |= acked
            in_flight += unanswered
            todo = [i for i in todo if i not in acked]
            restarted = time.monotonic()
            ingest.start()
            await ingest.ready()
            if k == 0:
                ready_s = time.monotonic() - restarted
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
            for i in todo:  # what got no 200, sent again, as the platform does
                await _post_until_200(client, scenario.bodies[i])
    finally:
        ingest.stop()
    in_kafka = await _echo_ids(bootstrap, cluster.prefix + "smb_message_echoes")
    lost = [i for i in acked_before_kill if f"wamid.echo{i}" not in in_kafka]
    assert not lost, f"acknowledged with 200 but not in Kafka: {sorted(lost)[:10]}"
    assert set(in_kafka) == set(scenario.messages)
    found = await asyncio.to_thread(_wait_messages, cluster, scenario.messages)
    assert found == scenario.messages
    final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
    assert final == n
    _figures(
        "ingest_sigkill",
        webhooks=n,
        kills=kills,
        acked_before_kill=len(acked_before_kill),
        in_flight_at_kill=in_flight,
        lost=n - len(found),
        kafka_records=sum(in_kafka.values()),
        duplicated_under_final=final - len(found),
        rows_stored_before_merge=stored,
        ingest_ready_after_restart_s=f"{ready_s:.1f}",
    )


async def test_the_ingest_killed_with_requests_in_flight_loses_no_acknowledged_webhook(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _ingest_killed_in_flight(kafka_bootstrap, tmp_path, unique("fk"), stopped, n=600, kills=1)


@soak
@pytest.mark.timeout(900)
async def test_soak_the_ingest_killed_five_times_under_traffic(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _ingest_killed_in_flight(kafka_bootstrap, tmp_path, unique("fks"), stopped, n=6000, kills=5)


# 2. The broker killed with -9 for a while under traffic through the ingest, a worker running.


async def _broker_killed(broker: Broker, tmp_path: Path, name: str, stopped: list[Cluster], outage_s: float) -> None:
    pool = _echoes(20_000)
    cluster = _cluster(broker.bootstrap, tmp_path, name)
    stopped.append(cluster)
    ingest = IngestProcess(broker.bootstrap, cluster.prefix, tmp_path / "ingest.log", COEX_KAFKA_SEND_TIMEOUT_S="3")
    worker = cluster.start("w1")
    ingest.start()
    sent: list[int] = []
    answers: Counter[int | None] = Counter()
    readiness: list[tuple[float, int]] = []
    first_200_after: list[float] = []
    done = asyncio.Event()
    try:
        await ingest.ready()
        await asyncio.to_thread(cluster.engine)
        # Killed mid-traffic, not mid-join: the soak test_soak_the_broker_killed_while_a_worker_joins_... has that.
        await asyncio.to_thread(cluster.wait_log, "w1", "Worker ready")

        async def sender(client: httpx.AsyncClient) -> None:
            while not done.is_set():
                i = len(sent)
                sent.append(i)
                body = pool.bodies[i]
                while True:  # as the platform does: the same webhook again until 200
                    try:
                        code: int | None = (
                            await client.post("/webhook", content=body, headers=signed(body))
                        ).status_code
                    except httpx.TransportError:
                        code = None
                    answers[code] += 1
                    if code == 200:
                        if restarted_at is not None and not first_200_after:
                            first_200_after.append(time.monotonic() - restarted_at)
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(0.05)

        async def probe(client: httpx.AsyncClient) -> None:
            while not done.is_set():
                with contextlib.suppress(httpx.TransportError):
                    readiness.append((time.monotonic(), (await client.get("/readyz")).status_code))
                await asyncio.sleep(0.25)

        restarted_at: float | None = None
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
            tasks = [asyncio.create_task(sender(client)) for _ in range(4)]
            tasks.append(asyncio.create_task(probe(client)))
            await asyncio.sleep(2)
            killed_at = time.monotonic()
            broker.kill()
            await asyncio.sleep(outage_s)
            await asyncio.to_thread(broker.run, "start")
            restarted_at = time.monotonic()
            while not first_200_after:
                assert time.monotonic() - restarted_at < WAIT_S, f"no 200 after the broker came back; {tmp_path}"
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # traffic goes on after the recovery
            done.set()
            await asyncio.gather(*tasks)
        assert ingest.proc is not None and ingest.proc.poll() is None, "the ingest exited"
        assert worker.poll() is None, f"the worker exited; see {cluster.logs}"
        expected = {f"wamid.echo{i}": pool.messages[f"wamid.echo{i}"] for i in sent}
        found = await asyncio.to_thread(_wait_messages, cluster, expected)
        landed_s = time.monotonic() - restarted_at
        assert found == expected
        final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
        assert final == len(expected)
        assert ingest.proc.poll() is None and worker.poll() is None
    finally:
        ingest.stop()
    during = [code for t, code in readiness if killed_at + 1 < t < restarted_at]
    assert all(code == 200 for t, code in readiness if t < killed_at)
    assert 503 in during, f"/readyz never said not ready while the broker was away: {sorted(set(during))}"
    assert readiness[-1][1] == 200
    not_ready = [t for t, code in readiness if t > killed_at and code == 503]
    assert answers[503] > 0
    _figures(
        "broker_kill9",
        outage_s=outage_s,
        webhooks=len(sent),
        answers=dict(answers),
        readyz_not_ready_after_s=f"{not_ready[0] - killed_at:.1f}",
        first_200_after_broker_start_s=f"{first_200_after[0]:.1f}",
        exact_rows_after_broker_start_s=f"{landed_s:.1f}",
        lost=len(expected) - len(found),
        duplicated_under_final=final - len(expected),
        rows_stored_before_merge=stored,
    )


@pytest.mark.timeout(400)
async def test_the_broker_killed_for_a_while_gives_503s_then_every_acknowledged_webhook_lands_once(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _broker_killed(broker, tmp_path, unique("fb"), stopped, outage_s=20)


@soak
@pytest.mark.timeout(900)
async def test_soak_the_broker_killed_for_two_minutes(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _broker_killed(broker, tmp_path, unique("fbs"), stopped, outage_s=120)


# 3. The broker restarted gracefully mid-import.


@pytest.mark.timeout(400)
async def test_a_graceful_broker_restart_mid_import_ends_in_exactly_the_expected_rows(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    scenario = build_scenario()
    add_echoes(scenario, range(100, 1600))  # a backlog the worker is still taking when the broker stops
    cluster = _cluster(broker.bootstrap, tmp_path, unique("fg"))
    stopped.append(cluster)
    worker = cluster.start("w1")
    engine = await asyncio.to_thread(cluster.engine)
    await _produce(broker.bootstrap, records(deliveries(scenario, seed=13), cluster.prefix))
    await _first_rows(engine)
    await asyncio.to_thread(broker.run, "stop")
    await asyncio.to_thread(broker.run, "start")
    restarted = time.monotonic()
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    assert worker.poll() is None, f"the worker exited; see {cluster.logs}"
    final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
    _figures(
        "broker_graceful_restart",
        messages=len(scenario.messages),
        lost=0,
        duplicated_under_final=final - len(scenario.messages),
        rows_stored_before_merge=stored,
        exact_rows_after_broker_start_s=f"{time.monotonic() - restarted:.1f}",
    )


# 4. A worker frozen past its session timeout while a peer runs.


async def _frozen_worker(bootstrap: str, tmp_path: Path, name: str, stopped: list[Cluster], frozen_s: float) -> None:
    scenario = build_scenario()
    add_echoes(scenario, range(100, 1100))
    recs = records(deliveries(scenario, seed=17), f"{name}.")
    cluster = _cluster(bootstrap, tmp_path, name)
    cluster.extra_env["COEX_WORKER_SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)
    stopped.append(cluster)
    await asyncio.to_thread(cluster.serve_engine)  # both workers are peers: either may freeze
    first, second = cluster.start("w1"), cluster.start("w2")
    for worker in ("w1", "w2"):
        await asyncio.to_thread(cluster.wait_log, worker, "Worker ready")
    await asyncio.sleep(3)  # the group settled on two members
    engine = await asyncio.to_thread(cluster.engine)
    half = len(recs) // 2
    await _produce(bootstrap, recs[:half])
    await _first_rows(engine)
    revoked = cluster.count_log("w2", REVOKING)
    first.send_signal(signal.SIGSTOP)  # mid-import, with records read and not yet committed
    frozen_at = time.monotonic()
    await _produce(bootstrap, recs[half:])
    await _rebalance_started(cluster, "w2", revoked)
    rebalanced_s = time.monotonic() - frozen_at
    await asyncio.sleep(max(0.0, frozen_s - (time.monotonic() - frozen_at)))
    first.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    exact_s = time.monotonic() - resumed
    await asyncio.sleep(3)  # what the thawed worker still writes or commits comes now
    assert await asyncio.to_thread(_state, engine) == expected
    assert second.poll() is None, f"the running peer exited; see {cluster.logs}"
    final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
    _figures(
        "worker_sigstop",
        frozen_s=f"{resumed - frozen_at:.1f}",
        session_timeout_s=SESSION_TIMEOUT_S,
        peer_took_over_after_s=f"{rebalanced_s:.1f}",
        exact_rows_after_sigcont_s=f"{exact_s:.1f}",
        lost=0,
        duplicated_under_final=final - len(scenario.messages),
        rows_stored_before_merge=stored,
        thawed_worker_alive=first.poll() is None,
    )


@pytest.mark.timeout(300)
async def test_a_worker_frozen_past_its_session_timeout_ends_in_exactly_the_expected_rows(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _frozen_worker(kafka_bootstrap, tmp_path, unique("ff"), stopped, frozen_s=SESSION_TIMEOUT_S + 6)


@soak
@pytest.mark.timeout(600)
async def test_soak_a_worker_frozen_for_a_minute_and_a_half(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _frozen_worker(kafka_bootstrap, tmp_path, unique("ffs"), stopped, frozen_s=90)


# 5. The engine's disk full, then freed.


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs of the test's own for the embedded engine, unmounted after it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True,
                       capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"a small disk for the engine needs `mount -t tmpfs` (root): {exc}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """A filler file taking every free byte of `disk`."""
    filler = disk / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        with contextlib.suppress(OSError):  # the last few KiB, smaller than a block
            while True:
                out.write(b"\0" * 4096)
    return filler


async def _disk_full(
    bootstrap: str, tmp_path: Path, disk: Path, name: str, stopped: list[Cluster], full_s: float
) -> None:
    scenario = build_scenario()
    add_echoes(scenario, range(100, 600))
    cluster = _cluster(bootstrap, tmp_path, name, engine_path=disk / "clickhouse")
    stopped.append(cluster)
    worker = cluster.start("w1")
    await asyncio.to_thread(cluster.engine)
    await asyncio.to_thread(cluster.wait_log, "w1", "Worker ready")
    filler = _fill(disk)
    await _produce(bootstrap, records(deliveries(scenario, seed=19), cluster.prefix))
    deadline = time.monotonic() + WAIT_S
    while await asyncio.to_thread(_metric, cluster, "w1", "coex_sink_retries_total") < 1:
        assert time.monotonic() < deadline, f"the worker never failed a write on a full disk; see {cluster.logs}"
        await asyncio.sleep(0.5)
    failing_since = time.monotonic()
    await asyncio.sleep(full_s)
    retries = await asyncio.to_thread(_metric, cluster, "w1", "coex_sink_retries_total")
    assert retries >= 2, "the worker stopped retrying"
    assert await asyncio.to_thread(_metric, cluster, "w1", "coex_clickhouse_up") == 0
    assert worker.poll() is None, f"the worker exited on a full disk; see {cluster.logs}"
    filler.unlink()
    freed = time.monotonic()
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    landed_s = time.monotonic() - freed
    assert await asyncio.to_thread(_metric, cluster, "w1", "coex_clickhouse_up") == 1
    assert worker.poll() is None
    final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
    _figures(
        "engine_disk_full",
        full_s=f"{freed - failing_since:.1f}",
        write_retries=int(retries),
        exact_rows_after_freed_s=f"{landed_s:.1f}",
        lost=0,
        duplicated_under_final=final - len(scenario.messages),
        rows_stored_before_merge=stored,
    )


@pytest.mark.timeout(300)
async def test_the_engines_disk_full_then_freed_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, small_disk: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _disk_full(kafka_bootstrap, tmp_path, small_disk, unique("fd"), stopped, full_s=5)


@soak
@pytest.mark.timeout(600)
async def test_soak_the_engines_disk_full_for_two_minutes(
    kafka_bootstrap: str, tmp_path: Path, small_disk: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    await _disk_full(kafka_bootstrap, tmp_path, small_disk, unique("fds"), stopped, full_s=120)


# 6. A whole import replayed.


async def _reset_to_the_beginning(cluster: Cluster) -> None:
    """What an operator's `kafka-consumer-groups --reset-offsets --to-earliest` does, for the input topics."""
    partitions = [TopicPartition(cluster.prefix + t, p) for t in INGEST_TOPICS for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=cluster.group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in partitions})
    finally:
        await consumer.stop()


async def _replayed(cluster: Cluster, name: str, total: int, expected: dict[str, Any]) -> float:
    """Until worker `name` read all `total` input records again and committed them; returns the time."""
    started = time.monotonic()
    deadline = started + WAIT_S
    while not (
        await asyncio.to_thread(_metric, cluster, name, "coex_stream_records_total") >= total
        and await _committed_to_the_end(cluster)
    ):
        assert time.monotonic() < deadline, f"{name} did not replay the import; see {cluster.logs}"
        await asyncio.sleep(0.5)
    assert await asyncio.to_thread(_state, cluster.engine()) == expected
    return time.monotonic() - started


@pytest.mark.timeout(300)
async def test_a_whole_import_replayed_ends_in_the_same_rows(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    scenario = build_scenario()
    add_echoes(scenario, range(100, 600))
    name = unique("fr")
    recs = records(deliveries(scenario, seed=29), f"{name}.")
    cluster = _cluster(kafka_bootstrap, tmp_path, name)
    stopped.append(cluster)
    first = cluster.start("w1")
    await asyncio.to_thread(cluster.engine)
    await _produce(kafka_bootstrap, recs)
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    before = await asyncio.to_thread(_stored_copies, cluster, "messages")
    cluster.stop(first)

    # The same group from offset 0, its tables (changelogs) as the import left them.
    await _reset_to_the_beginning(cluster)
    cluster.start("w1-replay")
    same_group_s = await _replayed(cluster, "w1-replay", len(recs), expected)
    cluster.stop(cluster.procs[-1])

    # A new group on the same topics into the same database: empty tables, everything read again.
    cluster.group = f"{name}-replay-group"
    cluster.start("w2-new-group")
    new_group_s = await _replayed(cluster, "w2-new-group", len(recs), expected)
    final, stored = await asyncio.to_thread(_stored_copies, cluster, "messages")
    assert final == before[0] == len(scenario.messages)
    _figures(
        "import_replayed",
        records=len(recs),
        messages=len(scenario.messages),
        lost=0,
        duplicated_under_final=final - len(scenario.messages),
        rows_stored_before_merge=f"{before[1]}->{stored}",
        same_group_replay_s=f"{same_group_s:.1f}",
        new_group_replay_s=f"{new_group_s:.1f}",
    )


# The broker killed in the middle of a worker's first join (the seek to committed offsets).


@soak
@pytest.mark.timeout(400)
async def test_soak_the_broker_killed_while_a_worker_joins_its_group_ends_in_exactly_the_expected_rows(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str], stopped: list[Cluster]
) -> None:
    scenario = build_scenario()
    cluster = _cluster(broker.bootstrap, tmp_path, unique("fj"))
    stopped.append(cluster)
    worker = cluster.start("w1")
    deadline = time.monotonic() + WAIT_S
    while "Seek stream partitions" not in (cluster.logs / "w1.log").read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the worker never joined; see {cluster.logs}"
        await asyncio.sleep(0.01)
    broker.kill()
    await asyncio.sleep(20)
    await asyncio.to_thread(broker.run, "start")
    restarted = time.monotonic()
    await _produce(broker.bootstrap, records(deliveries(scenario, seed=37), cluster.prefix))
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    assert worker.poll() is None, f"the worker exited; see {cluster.logs}"
    _figures("broker_kill9_mid_join", exact_rows_after_broker_start_s=f"{time.monotonic() - restarted:.1f}")

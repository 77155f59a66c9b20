"""Stream workers against the real broker and the embedded ClickHouse, run as `coex worker` processes.

The scenario (tests/unit/streams/test_processor.py): shuffled history chunks of three phases with media
follow-ups before and after their placeholders, contacts changed out of order, echoes, a declined
history, a PARTNER_REMOVED; every delivery sent two or three times. Each test ends in exactly the
expected rows, read with FINAL through the worker's own engine endpoint while it runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from runtime.settings import Settings
from sinks.remote import connect_owner
from streams.processor import TABLES
from streams.worker import STOP_GRACE_S
from tests.integration.broker_kit import Broker, free_port
from tests.integration.soak import soak
from tests.unit.streams.test_processor import (
    DECLINED_PNID,
    MESSAGE_COLUMNS,
    MSGS_PER_CHUNK,
    PHASES,
    PNID,
    Scenario,
    add_echoes,
    build_scenario,
    deliveries,
    records,
)
from topics.catalog import ensure_changelog_configs

ROOT = Path(__file__).resolve().parents[2]
COEX = str(ROOT / ".venv" / "bin" / "coex")
DATABASE = "coex_it"
PARTITIONS = 3
WAIT_S = 90.0
AGE_NEVER_S = 60.0  # a batch age that a test's rows must not wait out
PACE_S = 0.3
REVOKING = "Revoking previously assigned partitions"
READY = "Worker ready"  # faust logs it once each assignment is recovered
ASSIGNED = "Setting newly assigned partitions"
TOOK_OVER = "this worker opened it and serves it now"

# A process that owns the embedded engine and serves it, like `coex dev` does, so that every worker
# is a peer and any of them may leave.
ENGINE_OWNER = textwrap.dedent(
    """
    import asyncio, sys
    from runtime.settings import Settings
    from sinks.engine import ClientEngine
    from sinks.connect import open_engine
    from sinks.engine_server import serve_engine
    from sinks.migrate import apply_migrations

    async def main() -> None:
        settings = Settings()
        engine = open_engine(settings)
        assert isinstance(engine, ClientEngine)
        apply_migrations(engine, settings.clickhouse_database)
        async with serve_engine(engine, settings):
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        engine.close()

    asyncio.run(main())
    """
)


@dataclass
class Cluster:
    bootstrap: str
    prefix: str
    group: str
    engine_path: Path
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_ports: dict[str, int] = field(default_factory=dict)
    owner: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, web_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
        env.update(
            COEX_KAFKA_BOOTSTRAP=self.bootstrap,
            COEX_CLICKHOUSE_URL=f"chdb://{self.engine_path}",
            COEX_CLICKHOUSE_DATABASE=DATABASE,
            COEX_TOPIC_PREFIX=self.prefix,
            COEX_TOPIC_PARTITIONS=str(PARTITIONS),
            COEX_WORKER_GROUP=self.group,
            COEX_WORKER_WEB_PORT=str(web_port),
            COEX_SQL_PORT=str(free_port()),
            COEX_WORKER_SWEEP_INTERVAL_S="2",
            COEX_ONBOARDING_WATCH_INTERVAL_S="2",
            COEX_SINK_BATCH_AGE_S="0.3",
            # Every record parsed ahead in the helper process (streams/helper.py), not only large ones.
            COEX_WORKER_HELPER_MIN_BYTES="1",
            # Not created beforehand: a worker on a fresh machine makes its own data folder.
            COEX_DATA_DIR=str(self.logs / "data" / str(web_port)),
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        self.web_ports[name] = free_port()
        env = self.env(self.web_ports[name])
        proc = subprocess.Popen([COEX, "worker", "--id", name], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def serve_engine(self) -> None:
        """Own the engine in a process of its own (stopped after the workers, which flush through it)."""
        env = self.env(0)
        env["COEX_SQL_PORT"] = "0"
        self.owner = subprocess.Popen(
            [sys.executable, "-c", ENGINE_OWNER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
        )
        assert self.owner.stdout is not None
        assert self.owner.stdout.readline().strip() == b"ready", f"the engine owner failed; see {self.logs}"

    def stop_owner(self) -> None:
        if self.owner is not None and self.owner.stdin is not None:
            self.owner.stdin.close()
            self.owner.wait(timeout=30)

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def wait_log(self, name: str, text: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if text in (self.logs / f"{name}.log").read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} never logged {text!r}; see {self.logs}")

    def count_log(self, name: str, text: str) -> int:
        return (self.logs / f"{name}.log").read_text(errors="replace").count(text)

    def engine(self) -> Any:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            remote = connect_owner(str(self.engine_path), DATABASE)
            if remote is not None:
                return remote
            if self.procs and all(p.poll() is not None for p in self.procs):
                raise AssertionError(f"every worker exited; see {self.logs}")
            time.sleep(0.5)
        raise AssertionError(f"no worker serves {self.engine_path}; see {self.logs}")


async def _produce(bootstrap: str, recs: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=20 * 1024 * 1024)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key) for topic, key, value in recs])
    finally:
        await producer.stop()


def _state(engine: Any) -> dict[str, Any]:
    cols = ", ".join(MESSAGE_COLUMNS)
    messages = engine.query_rows(f"SELECT message_id, {cols} FROM messages FINAL ORDER BY message_id")
    contacts = engine.query_rows("SELECT contact_wa_id, full_name, deleted FROM contacts FINAL")
    sync = engine.query_rows(
        "SELECT phone_number_id, state, progress, phases_complete, chunks_received, messages_received, error_code "
        "FROM history_sync FINAL ORDER BY phone_number_id"
    )
    return {
        "messages": {r[0]: tuple(r[1:]) for r in messages},
        "contacts": {r[0]: (r[1], r[2]) for r in contacts},
        "sync": {r[0]: tuple(r[1:]) for r in sync},
        "events": sorted(r[0] for r in engine.query_rows("SELECT event FROM account_events FINAL")),
        "dead_letters": engine.query_rows("SELECT count() FROM dead_letters")[0][0],
        "declined_errors": engine.query_rows("SELECT count() FROM webhook_errors FINAL WHERE code = 2593109")[0][0],
    }


def _expected(scenario: Scenario) -> dict[str, Any]:
    chunks = len(scenario.chunks)
    return {
        "messages": scenario.messages,
        "contacts": scenario.contacts,
        "sync": {
            PNID: ("complete", 100, sorted(PHASES), chunks, chunks * MSGS_PER_CHUNK, None),
            DECLINED_PNID: ("declined", 0, [], 0, 0, 2593109),
        },
        "events": ["PARTNER_REMOVED"],
        "dead_letters": 0,
        "declined_errors": 1,
    }


def _wait_for(cluster: Cluster, expected: dict[str, Any]) -> dict[str, Any]:
    engine = cluster.engine()
    deadline = time.monotonic() + WAIT_S
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = _state(engine)
        except Exception:  # the tables appear with the worker's migrations
            state = {}
        if state == expected:
            return state
        time.sleep(1.0)
    return state


async def _released_chunks(cluster: Cluster) -> list[tuple[int, int]]:
    consumer = AIOKafkaConsumer(
        f"{cluster.prefix}normalized_messages",
        bootstrap_servers=cluster.bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=40 * 1024 * 1024,
    )
    await consumer.start()
    out: list[tuple[int, int]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=3000)
            if not batch:
                return out
            for recs in batch.values():
                for rec in recs:
                    doc = orjson.loads(rec.value)
                    if doc["kind"] == "history":
                        out.append((doc["phase"], doc["chunk_order"]))
    finally:
        await consumer.stop()


async def test_one_worker_ends_in_exactly_the_expected_rows(cluster: Cluster) -> None:
    scenario = build_scenario()
    cluster.start("w1")
    cluster.engine()  # the worker created the topics and serves the engine
    await _produce(cluster.bootstrap, records(deliveries(scenario, seed=7), cluster.prefix))
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    released = await _released_chunks(cluster)
    assert sorted(released) == sorted(scenario.chunks)  # each chunk released once to apps
    page = httpx.get(f"http://127.0.0.1:{cluster.web_ports['w1']}/metrics", timeout=10).text
    assert 'coex_stream_records_total{topic="' + cluster.prefix + 'history"}' in page
    assert "coex_stream_held_chunks 0.0" in page
    (ahead,) = [line.split()[1] for line in page.splitlines() if line.startswith("coex_stream_prepared_ahead_total ")]
    assert float(ahead) > 0  # parsed by the helper processes (COEX_WORKER_HELPER_MIN_BYTES=1 here)


async def test_a_worker_killed_mid_import_and_restarted_finishes_with_the_same_rows(cluster: Cluster) -> None:
    scenario = build_scenario()
    recs = records(deliveries(scenario, seed=11), cluster.prefix)
    half = len(recs) // 2
    first = cluster.start("w1")
    engine = cluster.engine()
    await _produce(cluster.bootstrap, recs[:half])
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if engine.query_rows("SELECT count() FROM messages")[0][0] > 0:
                break
        except Exception:
            pass
        await asyncio.sleep(0.2)
    cluster.stop(first, signal.SIGKILL)
    await _produce(cluster.bootstrap, recs[half:])
    cluster.start("w1-again")
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    released = await _released_chunks(cluster)
    assert set(released) == scenario.chunks  # at least once to apps across a crash


async def _first_rows(engine: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if engine.query_rows("SELECT count() FROM messages")[0][0] > 0:
                return
        except Exception:  # the tables appear with the worker's migrations
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("no row landed")


@pytest.mark.timeout(300)
async def test_a_worker_waits_out_a_kafka_outage_longer_than_its_stall_timeout(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    name = unique("o")
    stall_s = 3
    cluster = Cluster(broker.bootstrap, f"{name}.", f"{name}-group", tmp_path / "clickhouse", tmp_path)
    cluster.extra_env["COEX_WORKER_STALL_TIMEOUT_S"] = str(stall_s)
    scenario = build_scenario()
    add_echoes(scenario, range(100, 1600))  # a backlog the worker is still taking when the broker dies
    try:
        worker = cluster.start("w1")
        engine = cluster.engine()
        await _produce(broker.bootstrap, records(deliveries(scenario, seed=5), cluster.prefix))
        await _first_rows(engine)
        broker.kill()
        await asyncio.to_thread(cluster.wait_log, "w1", "Kafka does not answer")
        await asyncio.sleep(3 * stall_s)  # the outage outlasts the stall timeout several times over
        assert worker.poll() is None, f"the worker exited during the outage; see {cluster.logs}"
        await asyncio.to_thread(broker.run, "start")
        expected = _expected(scenario)
        assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
        assert worker.poll() is None
    finally:
        for proc in cluster.procs:
            cluster.stop(proc)


@pytest.mark.timeout(200)
async def test_a_worker_stopped_while_kafka_is_away_exits_by_its_deadline(
    broker: Broker, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    # faust's stop waited for good on its consumer thread, which died stopping with Kafka away.
    name = unique("s")
    cluster = Cluster(broker.bootstrap, f"{name}.", f"{name}-group", tmp_path / "clickhouse", tmp_path)
    cluster.extra_env["COEX_WORKER_SHUTDOWN_FLUSH_S"] = "1"
    worker = cluster.start("w1")
    try:
        await asyncio.to_thread(cluster.wait_log, "w1", "Worker ready")
        await asyncio.to_thread(broker.run, "stop")
        await asyncio.sleep(3)
        worker.send_signal(signal.SIGTERM)
        stopped = await asyncio.to_thread(_exits_within, worker, 1 + STOP_GRACE_S + 15)
        assert stopped, f"the worker was still stopping {1 + STOP_GRACE_S + 15:.0f} s after SIGTERM; see {cluster.logs}"
    finally:
        for proc in cluster.procs:
            cluster.stop(proc, signal.SIGKILL)


def _exits_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


async def test_two_workers_sharing_the_partitions_end_in_the_same_rows(cluster: Cluster) -> None:
    scenario = build_scenario()
    cluster.start("w1")
    cluster.engine()
    cluster.start("w2")  # reaches ClickHouse through w1's endpoint
    # Produced once the group settled on two members; records arriving during rebalances are the
    # next test's.
    await asyncio.to_thread(cluster.wait_log, "w2", "Worker ready")
    await asyncio.sleep(3)
    await _produce(cluster.bootstrap, records(deliveries(scenario, seed=23), cluster.prefix))
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected


@pytest.mark.timeout(300)
async def test_peers_of_an_engine_owner_that_died_take_the_engine_over_without_a_restart(cluster: Cluster) -> None:
    scenario = build_scenario()
    cluster.serve_engine()
    peers = [cluster.start("w1"), cluster.start("w2")]  # they write through the owner
    for name in ("w1", "w2"):
        await asyncio.to_thread(cluster.wait_log, name, "Worker ready")
    assert cluster.owner is not None
    cluster.owner.kill()  # its owner file stays behind, naming a dead process
    cluster.owner.wait()
    await _produce(cluster.bootstrap, records(deliveries(scenario, seed=3), cluster.prefix))
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected
    assert all(p.poll() is None for p in peers), f"a peer exited; see {cluster.logs}"
    # Both raced for the engine: one opened it and serves it, the other writes through it.
    assert sum(cluster.count_log(name, TOOK_OVER) for name in ("w1", "w2")) == 1, f"see {cluster.logs}"


class _Paced:
    """Sends the records in order: a few at a steady pace, or a burst of them at once."""

    def __init__(self, bootstrap: str, recs: list[tuple[str, bytes, bytes]]) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=20 * 1024 * 1024)
        self.recs = recs
        self.sent = 0

    async def send(self, n: int, pace_s: float = 0.0) -> None:
        for topic, key, value in self.recs[self.sent : self.sent + n]:
            await self.producer.send_and_wait(topic, value, key=key)
            self.sent += 1
            await asyncio.sleep(pace_s)


async def _rebalance_started(cluster: Cluster, name: str, before: int) -> None:
    """Until `name` logs one more revocation than `before`: a rebalance of its group has begun."""
    deadline = time.monotonic() + WAIT_S
    while cluster.count_log(name, REVOKING) <= before:
        assert time.monotonic() < deadline, f"{name} never rebalanced; see {cluster.logs}"
        await asyncio.sleep(0.05)


@soak  # rebalances under traffic are also in the two-worker and the killed-peer tests
async def test_workers_joining_and_leaving_while_records_arrive_end_in_the_same_rows(cluster: Cluster) -> None:
    # Records arrive while w2 joins and while w1 leaves, a burst of them just as each rebalance begins:
    # the members fetch them while they revoke, seek and resume. None may be committed unprocessed.
    # Every delivery once, shuffled: a redelivered copy would hide the loss of the other.
    scenario = build_scenario()
    bodies = list(scenario.bodies)
    random.Random(31).shuffle(bodies)
    paced = _Paced(cluster.bootstrap, records(bodies, cluster.prefix))
    burst = len(paced.recs) // 4
    await asyncio.to_thread(cluster.serve_engine)
    first = cluster.start("w1")
    await asyncio.to_thread(cluster.wait_log, "w1", "Worker ready")  # the worker created the topics
    await paced.producer.start()
    try:
        await paced.send(burst // 2, PACE_S)
        revoked = cluster.count_log("w1", REVOKING)
        cluster.start("w2")
        await _rebalance_started(cluster, "w1", revoked)
        await paced.send(burst)
        await asyncio.to_thread(cluster.wait_log, "w2", "Worker ready")
        await paced.send(burst // 2, PACE_S)
        revoked = cluster.count_log("w2", REVOKING)
        first.send_signal(signal.SIGTERM)
        await _rebalance_started(cluster, "w2", revoked)
        await paced.send(burst)
        await paced.send(len(paced.recs), PACE_S)
    finally:
        await paced.producer.stop()
    await asyncio.to_thread(cluster.stop, first)
    expected = _expected(scenario)
    assert await asyncio.to_thread(_wait_for, cluster, expected) == expected


async def test_bad_records_and_bad_messages_land_in_dead_letters_and_the_rest_goes_on(cluster: Cluster) -> None:
    # An echo webhook with a good message and one without its `to`, then a record that is not JSON.
    echo = {"from": "15550783881", "id": "wamid.echo.good", "timestamp": "1739230000", "type": "text", "to": "1650"}
    value = {"metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
             "message_echoes": [echo, {**echo, "id": "wamid.echo.bad", "to": None}]}  # fmt: skip
    change = {"field": "smb_message_echoes", "value": value}
    body = orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]})
    # Written once the worker has nothing more to read, not after the batch age (streams/commit_policy.py).
    cluster.extra_env["COEX_SINK_BATCH_AGE_S"] = str(AGE_NEVER_S)
    cluster.start("w1")
    engine = await asyncio.to_thread(cluster.engine)
    recs = records([body], cluster.prefix)
    await _produce(cluster.bootstrap, [*recs, (f"{cluster.prefix}history", PNID.encode(), b"{not json")])
    produced = time.monotonic()
    deadline = produced + WAIT_S
    letters: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(letters) < 2:
        letters = engine.query_rows("SELECT topic, key, error, raw FROM dead_letters ORDER BY topic")
        await asyncio.sleep(0.5)
    assert [(topic, key) for topic, key, _, _ in letters] == [
        (f"{cluster.prefix}history", PNID),
        (f"{cluster.prefix}smb_message_echoes", PNID),
    ]
    assert letters[0][2].startswith("EnvelopeError") and letters[0][3] == "{not json"
    assert letters[1][2] == "ChangeError: $.value.message_echoes[1].to: " + (
        "expected the WhatsApp user's number (non-empty string)"
    )
    assert orjson.loads(letters[1][3])["id"] == "wamid.echo.bad"
    rows = engine.query_rows("SELECT message_id, source, direction FROM messages FINAL")
    assert rows == [("wamid.echo.good", "echo", "outbound")]
    assert time.monotonic() - produced < AGE_NEVER_S / 2


# Figures of the takeover tests (kill -> a survivor processes again, kill -> exactly the expected rows):
# printed for RELIABILITY.md; asserted generously, the machine is shared.
RESUME_BOUND_S = 30.0
EXACT_BOUND_S = 45.0


def _partition_of(key: str) -> int:
    """The partition the producers' default partitioner gives `key` (murmur2, as Kafka's Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def _active_partitions(cluster: Cluster, name: str) -> set[int]:
    """The history partitions `name` was given at its last assignment: faust logs them as a table
    of each topic's partition set (`{0}`, `{1-2}`, `{0, 2}`)."""
    text = (cluster.logs / f"{name}.log").read_text(errors="replace")
    _, found, rest = text.rpartition(ASSIGNED)
    row = re.search(
        rf"^\| {re.escape(cluster.prefix)}history\s+\| \{{([^}}]*)\}}", rest.split(" for group ", 1)[0], re.M
    )
    partitions: set[int] = set()
    for part in row[1].split(",") if found and row else ():
        first, _, last = part.strip().partition("-")
        partitions.update(range(int(first), int(last or first) + 1))
    return partitions


async def _settled(cluster: Cluster, names: tuple[str, ...]) -> None:
    """Until the partitions are split between `names`, each of them with some."""
    deadline = time.monotonic() + WAIT_S
    while True:
        shares = [_active_partitions(cluster, name) for name in names]
        if all(shares) and sum(map(len, shares)) == PARTITIONS and set().union(*shares) == set(range(PARTITIONS)):
            return
        assert time.monotonic() < deadline, f"the group never settled on {names}: {shares}; see {cluster.logs}"
        await asyncio.sleep(0.3)


async def _kill_and_time(
    cluster: Cluster, victim: subprocess.Popen[bytes], survivor: str, rest: list[tuple[str, bytes, bytes]]
) -> tuple[float, float]:
    """SIGKILL `victim` and send `rest`: seconds until `survivor` is ready on its new assignment, and
    the monotonic time of the kill."""
    ready = cluster.count_log(survivor, READY)
    killed = time.monotonic()
    victim.kill()
    victim.wait()
    await _produce(cluster.bootstrap, rest)
    while cluster.count_log(survivor, READY) <= ready:
        assert time.monotonic() - killed < WAIT_S, f"{survivor} never took the partitions over; see {cluster.logs}"
        await asyncio.sleep(0.2)
    resumed = time.monotonic() - killed
    return resumed, killed


async def _exact_after(cluster: Cluster, killed: float, expected: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    state = await asyncio.to_thread(_wait_for, cluster, expected)
    return time.monotonic() - killed, state


@pytest.mark.timeout(300)
async def test_a_worker_killed_while_another_runs_hands_its_partitions_over_within_seconds(cluster: Cluster) -> None:
    # Both workers are peers of an engine owner of their own: this is the group's takeover alone.
    scenario = build_scenario()
    recs = records(deliveries(scenario, seed=13), cluster.prefix)
    half = len(recs) // 2
    await asyncio.to_thread(cluster.serve_engine)
    procs = {"w1": cluster.start("w1"), "w2": cluster.start("w2")}
    await _settled(cluster, ("w1", "w2"))
    await _produce(cluster.bootstrap, recs[:half])
    await _first_rows(await asyncio.to_thread(cluster.engine))
    # The one that processes the scenario's business dies; the other must take its partition.
    victim = "w1" if _partition_of(PNID) in _active_partitions(cluster, "w1") else "w2"
    survivor = "w2" if victim == "w1" else "w1"
    resumed, killed = await _kill_and_time(cluster, procs[victim], survivor, recs[half:])
    expected = _expected(scenario)
    exact, state = await _exact_after(cluster, killed, expected)
    print(f"worker SIGKILL: {survivor} ready on its assignment after {resumed:.1f} s, exact rows after {exact:.1f} s")
    assert state == expected
    assert _partition_of(PNID) in _active_partitions(cluster, survivor)
    assert resumed < RESUME_BOUND_S and exact < EXACT_BOUND_S, f"{resumed:.1f} s, {exact:.1f} s; see {cluster.logs}"
    # What the survivor restored from is compacted within minutes (streams/topics.py).
    settings = Settings(kafka_bootstrap=cluster.bootstrap, worker_group=cluster.group)
    assert await ensure_changelog_configs(settings, TABLES) == []


@pytest.mark.timeout(300)
async def test_a_worker_that_served_the_engine_killed_mid_import_leaves_its_peer_the_engine_and_the_partitions(
    cluster: Cluster,
) -> None:
    scenario = build_scenario()
    recs = records(deliveries(scenario, seed=17), cluster.prefix)
    half = len(recs) // 2
    owner = cluster.start("w1")
    engine = await asyncio.to_thread(cluster.engine)  # w1 opened the engine and serves it
    assert engine.owner.pid == owner.pid
    peer = cluster.start("w2")
    await _settled(cluster, ("w1", "w2"))
    await _produce(cluster.bootstrap, recs[:half])
    await _first_rows(engine)
    resumed, killed = await _kill_and_time(cluster, owner, "w2", recs[half:])
    expected = _expected(scenario)
    exact, state = await _exact_after(cluster, killed, expected)
    print(f"engine owner SIGKILL: w2 ready on its new assignment after {resumed:.1f} s, exact rows after {exact:.1f} s")
    assert state == expected
    assert peer.poll() is None, f"the peer exited; see {cluster.logs}"
    assert cluster.count_log("w2", TOOK_OVER) == 1
    assert (await asyncio.to_thread(cluster.engine)).owner.pid == peer.pid
    assert resumed < RESUME_BOUND_S and exact < EXACT_BOUND_S, f"{resumed:.1f} s, {exact:.1f} s; see {cluster.logs}"


@pytest.mark.timeout(200)
async def test_a_worker_stopped_while_its_engine_owner_does_not_answer_exits_by_its_flush_limit(
    cluster: Cluster,
) -> None:
    # The owner lives (frozen), so no peer may take the engine over; a stop waits for its rows only
    # COEX_WORKER_SHUTDOWN_FLUSH_S; they are read again at the next start.
    cluster.extra_env["COEX_WORKER_SHUTDOWN_FLUSH_S"] = "2"
    await asyncio.to_thread(cluster.serve_engine)
    assert cluster.owner is not None
    worker = cluster.start("w1")
    await asyncio.to_thread(cluster.wait_log, "w1", READY)
    cluster.owner.send_signal(signal.SIGSTOP)
    try:
        await _produce(cluster.bootstrap, records(deliveries(build_scenario(), seed=5), cluster.prefix))
        # Processed; its write waits on the frozen owner.
        await asyncio.to_thread(cluster.wait_log, "w1", "business offboarded")
        await asyncio.sleep(2)
        started = time.monotonic()
        await asyncio.to_thread(cluster.stop, worker)
        assert worker.returncode == 0 and time.monotonic() - started < 20, f"see {cluster.logs}"
        assert cluster.count_log("w1", "exiting without them") == 1
        assert cluster.count_log("w1", TOOK_OVER) == 0
    finally:
        cluster.owner.send_signal(signal.SIGCONT)

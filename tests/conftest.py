"""Shared fixtures: a real Kafka broker for the session, unique topics and databases per test.

Kafka: `COEX_TEST_KAFKA_BOOTSTRAP` if set; else a testcontainers broker where a Docker engine
answers; else the project's own local broker (deploy/kafka-local.sh) on a test port, stopped at
the end if this session started it. ClickHouse: the embedded engine in a temporary folder, one
database per test (one process owns an engine path, so the session shares one path).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_KAFKA_PORT = int(os.environ.get("COEX_TEST_KAFKA_PORT", "19092"))


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("COEX_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    env = dict(os.environ)
    env["COEX_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{TEST_KAFKA_PORT}"
    env["COEX_KAFKA_HOME"] = str(ROOT / ".coex" / "test-kafka")
    env["COEX_KAFKA_HEAP"] = "768m"
    script = str(ROOT / "deploy" / "kafka-local.sh")
    status = subprocess.run(["bash", script, "status"], env=env, capture_output=True, text=True)
    started_here = status.returncode != 0
    if started_here:
        # Every test makes its own topics: a broker left with thousands of them from earlier
        # sessions spends its time (and the clients theirs) on metadata. Test data is disposable.
        shutil.rmtree(Path(env["COEX_KAFKA_HOME"]) / "data", ignore_errors=True)
    subprocess.run(["bash", script, "start"], env=env, check=True)
    try:
        yield env["COEX_KAFKA_BOOTSTRAP"]
    finally:
        if started_here and not os.environ.get("COEX_TEST_KEEP_KAFKA"):
            subprocess.run(["bash", script, "stop"], env=env, check=False)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name unique to this test run: topics, databases, consumer groups."""
    return lambda prefix: f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[object]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """Create a topic with a unique name (auto-create is off on our broker)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    def create(prefix: str = "t-", partitions: int = 1) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:10]}"

        async def go() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(name, partitions, 1)])
            finally:
                await admin.close()

        asyncio.run(go()) if not _loop_running() else _run_in_thread(go)
        return name

    return create


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(factory: Callable[[], object]) -> None:
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture(scope="session")
def clickhouse_url(chdb_path: Path) -> str:
    return f"chdb://{chdb_path}"


@pytest.fixture
def ch_database(clickhouse_url: str, unique: Callable[[str], str]) -> Iterator[str]:
    """A fresh database on the session's embedded engine, dropped after the test."""
    from sinks.client import open_client

    name = unique("coex_test_")
    admin = open_client(clickhouse_url)
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        admin.close()

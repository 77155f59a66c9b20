from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.broker_kit import ROOT, Broker
from tests.integration.owner_kit import OWNER

if TYPE_CHECKING:
    from tests.integration.test_streams import Cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, to stop or kill (never the session's)."""
    (tmp_path / "kafka").mkdir()
    b = Broker(tmp_path / "kafka")
    b.run("start")
    try:
        yield b
    finally:
        b.run("stop")


@pytest.fixture
def cluster(kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str]) -> Iterator[Cluster]:
    """Workers of the test's own (topics, group, engine), stopped at the end (tests/integration/test_streams.py)."""
    from tests.integration.test_streams import Cluster

    name = unique("s")
    c = Cluster(kafka_bootstrap, f"{name}.", f"{name}-group", tmp_path / "clickhouse", tmp_path)
    try:
        yield c
    finally:
        for proc in c.procs:
            c.stop(proc)
        c.stop_owner()


@pytest.fixture
def owned_engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A separate process that owns an embedded engine and serves it, like a running worker."""
    env = dict(os.environ)
    env.update(
        COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'owned'}",
        COEX_CLICKHOUSE_DATABASE="owned",
        COEX_SQL_PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == b"opened"
        assert proc.stdout.readline().strip() == b"ready"
        yield env
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not (tmp_path / "owned" / ".coex-owner.json").exists()

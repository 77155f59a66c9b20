"""`coex migrate` as a user runs it: real broker, an embedded ClickHouse of its own, its output."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path


def _migrate(kafka_bootstrap: str, tmp_path: Path, prefix: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(
        COEX_KAFKA_BOOTSTRAP=kafka_bootstrap,
        COEX_CLICKHOUSE_URL=f"chdb://{tmp_path / 'ch'}",
        COEX_DATA_DIR=str(tmp_path / ".coex"),
        COEX_TOPIC_PREFIX=prefix,
    )
    done = subprocess.run(
        [sys.executable, "-m", "coex.cli", "--log-level", "INFO", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_migrate_says_once_which_topics_it_created_then_that_they_are_up_to_date(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}."
    first = _migrate(kafka_bootstrap, tmp_path, prefix)
    assert first.count(f"{prefix}history") == 1, first  # the summary line only, no log line besides
    assert "created topics" in first
    again = _migrate(kafka_bootstrap, tmp_path, prefix)
    assert "topics up to date" in again and "created" not in again, again

"""`coex dev` keeps its children running: an exited child is started again after its backoff."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from coex.dev import STABLE_S, Child, Console, tend


def child(tmp_path: Path, code: str) -> Child:
    return Child("worker", [sys.executable, "-c", code], env={}, log_path=tmp_path / "worker.log")


def test_a_child_that_dies_is_started_again_after_its_backoff(tmp_path: Path) -> None:
    worker = child(tmp_path, "raise SystemExit(3)")
    out = io.StringIO()
    console = Console(out)
    worker.start()
    assert worker.proc is not None
    worker.proc.wait(10)
    first = worker.proc

    now = time.monotonic()
    tend(worker, now, console)
    assert "worker exited (3); restarting in 2 s" in out.getvalue()
    for step in (0.5, 1.0, 1.9):  # still in its backoff: not started, and not counted as exiting again
        tend(worker, now + step, console)
        assert worker.proc is None and worker.restarts == 1
    tend(worker, now + 2.0, console)
    assert worker.proc is not None and worker.proc is not first
    worker.proc.wait(10)
    tend(worker, now + 2.5, console)
    assert "restarting in 4 s" in out.getvalue()


def test_the_backoff_starts_over_once_a_child_has_stayed_up(tmp_path: Path) -> None:
    worker = child(tmp_path, "import time; time.sleep(30)")
    worker.start()
    worker.started_at, worker.restarts = 0.0, 4
    try:
        tend(worker, STABLE_S - 1, Console(io.StringIO()))
        assert worker.restarts == 4
        tend(worker, STABLE_S, Console(io.StringIO()))
        assert worker.restarts == 0
    finally:
        worker.stop(timeout=5)

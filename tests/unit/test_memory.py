"""The worker's memory policy: applied in a fresh process (it is process-wide), env wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import gc, json, pyarrow as pa
from coex.memory import bound_memory
applied = bound_memory()
print(json.dumps({"applied": applied, "pool": pa.default_memory_pool().backend_name, "gc": gc.get_threshold()}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "ARROW_DEFAULT_MEMORY_POOL"))}
    cmd = [sys.executable, "-c", PROBE]
    out = subprocess.run(cmd, env={**clean, **env}, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc bounds")
def test_bounds_glibc_arenas_mmap_threshold_and_arrow_pool() -> None:
    result = probe()
    assert result["applied"] == [
        "MALLOC_ARENA_MAX=2",
        "MALLOC_MMAP_THRESHOLD_=33554432",
        "MALLOC_TRIM_THRESHOLD_=67108864",
        "ARROW_DEFAULT_MEMORY_POOL=jemalloc",
    ]
    assert result["pool"] == "jemalloc"
    assert result["gc"] == [50_000, 20, 100]


def test_settings_in_the_environment_win() -> None:
    result = probe(MALLOC_ARENA_MAX="4", ARROW_DEFAULT_MEMORY_POOL="mimalloc")
    applied = result["applied"]
    assert isinstance(applied, list)
    assert not any(a.startswith(("MALLOC_ARENA_MAX", "ARROW_DEFAULT_MEMORY_POOL")) for a in applied)
    assert result["pool"] == "mimalloc"

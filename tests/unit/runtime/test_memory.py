"""The worker's memory policy: applied in a fresh process (it is process-wide), env wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import gc, json, os, sys, pyarrow as pa
if sys.argv[1:] == ["engine-first"]:
    import chdb
from runtime.memory import bound_memory
applied = bound_memory()
print(json.dumps({"applied": applied, "pool": pa.default_memory_pool().backend_name, "gc": gc.get_threshold(),
                  "je": os.environ.get("JE_MALLOC_CONF")}))
"""


def probe(*args: str, **env: str) -> dict[str, object]:
    prefixes = ("MALLOC_", "ARROW_DEFAULT_MEMORY_POOL", "JE_MALLOC_CONF")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    cmd = [sys.executable, "-c", PROBE, *args]
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
        "JE_MALLOC_CONF=dirty_decay_ms:500",
        "ARROW_DEFAULT_MEMORY_POOL=jemalloc",
    ]
    assert result["pool"] == "jemalloc"
    assert result["je"] == "dirty_decay_ms:500"  # what the embedded engine's allocator reads when it loads
    assert result["gc"] == [50_000, 20, 100]


def test_settings_in_the_environment_win() -> None:
    result = probe(MALLOC_ARENA_MAX="4", ARROW_DEFAULT_MEMORY_POOL="mimalloc", JE_MALLOC_CONF="dirty_decay_ms:0")
    applied = result["applied"]
    assert isinstance(applied, list)
    assert not any(a.startswith(("MALLOC_ARENA_MAX", "ARROW_DEFAULT_MEMORY_POOL", "JE_MALLOC_CONF")) for a in applied)
    assert result["pool"] == "mimalloc"
    assert result["je"] == "dirty_decay_ms:0"


def test_engine_allocator_left_alone_once_the_engine_is_loaded() -> None:
    """Its allocator read its settings when it loaded: claiming one set afterwards would mislead."""
    result = probe("engine-first")
    applied = result["applied"]
    assert isinstance(applied, list)
    assert not any(a.startswith("JE_MALLOC_CONF") for a in applied)
    assert result["je"] is None

"""Process memory policy: bounded allocators for a worker, a collector paced for bulk imports.

Why each setting (measured in bench/RESULTS.md, End to end: 2026-11-25, 2026-12-03, 2026-12-04):
- glibc two arenas, pyarrow on its jemalloc pool: by default every allocating thread gets an arena
  and mimalloc keeps freed pages per thread, so resident memory stays hundreds of MB above use.
- Large blocks from the heap up to 32 MiB, 64 MiB of free heap kept: a worker allocates and frees
  blocks of a few MB all the time, and mapping each afresh cost page faults and kernel CPU.
- The engine's (chdb's) jemalloc returns freed pages after 0.5 s instead of 5 s; it reads
  JE_MALLOC_CONF when the library loads, so this is set before the first `import chdb`.
- The cycle collector paced for imports: at the default pace its full collections walk every
  long-lived object for each few thousand short-lived parsed-JSON containers.
MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, ARROW_DEFAULT_MEMORY_POOL or
JE_MALLOC_CONF in the environment win.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

# From glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENAS = 2
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
GC_THRESHOLDS = (50_000, 20, 100)
ENGINE_MALLOC_CONF = "dirty_decay_ms:500"


def pace_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def bound_memory() -> list[str]:
    """Apply the bounds this platform allows and pace the collector; returns what was set."""
    pace_gc()
    applied = _bound_glibc()
    applied += _bound_engine_allocator()
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        import pyarrow as pa

        try:
            pool, name = pa.jemalloc_memory_pool(), "jemalloc"
        except NotImplementedError:  # a pyarrow built without it
            pool, name = pa.system_memory_pool(), "system"
        pa.set_memory_pool(pool)
        applied.append(f"ARROW_DEFAULT_MEMORY_POOL={name}")
    return applied


def _bound_engine_allocator() -> list[str]:
    if "JE_MALLOC_CONF" in os.environ or "chdb" in sys.modules:
        return []  # set by the user, or too late: the library read it when it loaded
    os.environ["JE_MALLOC_CONF"] = ENGINE_MALLOC_CONF
    return [f"JE_MALLOC_CONF={ENGINE_MALLOC_CONF}"]


def _bound_glibc() -> list[str]:
    try:
        # The symbols this process already has: no library search (find_library runs ldconfig).
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:
        return []  # not glibc (musl has no mallopt)
    applied = []
    for env, param, value in (
        ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
        ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ):
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            applied.append(f"{env}={value}")
        else:
            log.warning("mallopt refused %s=%d", env, value)
    return applied

"""Process memory policy: bounded allocators for a worker, a collector paced for bulk imports.

By default glibc gives each thread that allocates its own arena (up to 8 per core), and pyarrow
allocates through mimalloc, which keeps freed pages in per-thread heaps: a worker's history
records, fetch buffers and insert payloads then leave resident memory hundreds of MB above what is
in use. Here glibc gets two arenas and pyarrow its jemalloc pool, which hands freed pages back
after a second (its decay) but reuses them meanwhile. bench/e2e.py, one run each: worker peak
1,469 MB with the defaults, 1,077 MB with these two (and large blocks mapped from 128 KiB, since
raised, below).

Large blocks are served from the heap up to 32 MiB (glibc's own ceiling for them) and up to 64 MiB
of free heap is kept: a worker allocates and frees blocks of a few MB all the time (record values,
parsed chunks, JSON of released messages, producer batches, the engine's buffers), and with them
mapped and unmapped one by one every page of each was faulted in and zeroed afresh: 1.1M page
faults and a sixth of the worker's CPU in the kernel per 500k messages, ~0.35M with these.
bench/worker.py, 500k messages, 4 rounds against a 128 KiB threshold and glibc's default trim:
faster in every pair, 1.20x, worker CPU 26.8 -> 22.7 s, peak memory 869 -> 1,033 MB. Keeping only
16 or 32 MiB of free heap gained nothing (1.00x, 0.97x, 3 rounds each).
MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or ARROW_DEFAULT_MEMORY_POOL in
the environment win.

The embedded engine (chdb) brings its own jemalloc, built to keep freed pages for 5 s with no
background thread to return them: a worker inserting a batch every second or two kept ~130 MB of
them resident (smaps of the worker at its peak, bench/e2e.py: 569 MB anonymous outside glibc's main
heap with 5 s, 436 MB with 0.5 s). It reads JE_MALLOC_CONF when the library loads, so the decay is
set before the first `import chdb`; a JE_MALLOC_CONF in the environment wins.

CPython runs its cycle collector whenever tracked allocations pass deallocations by 700, and a full
collection walks every long-lived object (faust, aiokafka, the state, the buffered rows). A history
import allocates millions of short-lived parsed-JSON containers, freed by reference counting anyway:
at the default pace collections took 1.9 s of the worker's main thread per 300k messages, 0.17 s at
GC_THRESHOLDS (worker alone on 300k messages, one run each), and 0.45 s of ingest's 4.8 s of CPU.
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

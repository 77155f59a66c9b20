"""Normalization throughput: messages/s for one 10k-message history chunk and for small webhooks.

    .venv/bin/python bench/normalize.py            # print the figures
    .venv/bin/python bench/normalize.py --write    # also (re)write its section of bench/RESULTS.md

What is timed is what a stream worker does per Kafka record: `decode_record` (one orjson.loads
of the wrapper) + `normalize_change`. Baseline, same run, same bytes: `orjson.loads` alone, the
floor any Python consumer pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from schemas.normalize import Normalized, normalize_change
from schemas.routing import decode_record, split_delivery

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Normalization (issue 3)"
BUSINESS, PNID, WABA = "15550783881", "106540352242922", "102290129340398"
METADATA = {"display_phone_number": BUSINESS, "phone_number_id": PNID}


def history_message(n: int, user: str) -> dict[str, Any]:
    """A realistic mix: mostly text, some placeholders, images, reactions, replies."""
    kind = ("text", "text", "text", "text", "text", "text", "media_placeholder", "image", "reaction", "text")[n % 10]
    message: dict[str, Any] = {
        "from": BUSINESS if n % 3 else user,
        "id": f"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUY{n:012d}",
        "timestamp": str(1_739_000_000 + n),
        "type": kind,
        "history_context": {"status": ("READ", "DELIVERED", "SENT")[n % 3]},
    }
    if kind == "text":
        message["text"] = {"body": f"Message number {n}: thanks for your order, see you soon!"}
    elif kind == "image":
        message["image"] = {"caption": "photo", "mime_type": "image/jpeg", "sha256": "ab" * 16, "id": str(n)}
    elif kind == "reaction":
        message["reaction"] = {"message_id": f"wamid.{n - 1}", "emoji": "👍"}
    if n % 7 == 0:
        message["context"] = {"from": user, "id": f"wamid.{n - 2}"}
    return message


def envelope(field: str, value: dict[str, Any]) -> bytes:
    change = {"value": value, "field": field}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [change]}]})


def history_chunk(messages: int, per_thread: int = 50) -> bytes:
    threads = []
    for t in range(messages // per_thread):
        user = f"1650555{t:04d}"
        threads.append({"id": user, "messages": [history_message(t * per_thread + i, user) for i in range(per_thread)]})
    chunk = {"metadata": {"phase": 1, "chunk_order": 3, "progress": 40}, "threads": threads}
    return envelope("history", {"messaging_product": "whatsapp", "metadata": METADATA, "history": [chunk]})


def echo() -> bytes:
    message = history_message(1, "16505551234")
    del message["history_context"]
    message["to"] = "16505551234"
    return envelope("smb_message_echoes", {"metadata": METADATA, "message_echoes": [message]})


def inbound() -> bytes:
    message: dict[str, Any] = {"from": "16505551234", "id": "wamid.in", "timestamp": "1739230955", "type": "text"}
    message["text"] = {"body": "Hi, is the shop open today?"}
    contacts = [{"profile": {"name": "Pablo"}, "wa_id": "16505551234"}]
    return envelope("messages", {"metadata": METADATA, "contacts": contacts, "messages": [message]})


def best_rate(run: Callable[[], object], messages: int, min_seconds: float = 1.0, repeats: int = 5) -> float:
    """Messages per second, the best of `repeats` timed loops of at least `min_seconds / repeats`."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            run()
        if time.perf_counter() - start >= min_seconds / repeats:
            break
        loops *= 2
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - start) / loops)
    return messages / best


def worker_step(record_value: bytes) -> Normalized:
    return normalize_change(decode_record(record_value))


def measure() -> list[tuple[str, int, int, float, float]]:
    cases = [
        ("history chunk", 10_000, history_chunk(10_000)),
        ("echo", 1, echo()),
        ("messages (inbound)", 1, inbound()),
    ]
    rows = []
    for name, count, body in cases:
        [record] = split_delivery(body, "bench", time.time())
        out = normalize_change(decode_record(record.value))
        produced = sum(len(c.messages) for c in out.history_chunks) + len(out.messages)
        assert produced == count, (name, produced)
        baseline = best_rate(partial(orjson.loads, record.value), count)
        ours = best_rate(partial(worker_step, record.value), count)
        rows.append((name, count, len(record.value), baseline, ours))
    return rows


def report(rows: list[tuple[str, int, int, float, float]]) -> str:
    lines = [
        SECTION,
        "",
        f"`.venv/bin/python bench/normalize.py --write` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}). Messages/s, best of 5; one record = what a worker reads.",
        "",
        "| input | msgs/record | record bytes | baseline `orjson.loads` | `decode_record` + `normalize_change` "
        "| ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, count, size, baseline, ours in rows:
        lines.append(
            f"| {name} | {count:,} | {size:,} | {baseline:,.0f} | {ours:,.0f} | {baseline / ours:.1f}x slower |"
        )
    lines.append("")
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), leaving the others alone."""
    if RESULTS.exists():
        text = RESULTS.read_text()
    else:
        text = f"# Benchmarks\n\nMachine: {os.cpu_count()} cores, Python {platform.python_version()}.\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if end == -1 else "\n" + text[end + 1 :])
    RESULTS.write_text(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="(re)write the section in bench/RESULTS.md")
    args = parser.parse_args(argv)
    section = report(measure())
    sys.stdout.write(section)
    if args.write:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

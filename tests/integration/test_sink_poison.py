"""A row pyarrow cannot encode is a dead letter and the rest of its batch lands, at once: the writer
on the real embedded engine."""

from __future__ import annotations

import asyncio

import orjson

from schemas.rows import MessageRow
from sinks import metrics
from sinks.engine import Engine
from tests.integration.test_sinks import PNID, engine, final_rows, message, settings, writer_on

__all__ = ["engine", "settings"]  # fixtures

POISON: dict[str, MessageRow] = {
    "wamid.str-time": message("wamid.str-time", sent_at="2025-02-11T00:00:00Z"),  # type: ignore[arg-type]
    "wamid.huge-code": message("wamid.huge-code", error_code=2**70),
    "wamid.bytes": message("wamid.bytes", text=b"\xff\xfe"),  # type: ignore[arg-type]
}


async def test_rows_pyarrow_cannot_encode_are_dead_letters_and_the_rest_lands(engine: Engine) -> None:
    writer = writer_on(engine, retry_max_s=0.05)
    refused_before = metrics.ROWS_REFUSED.labels("messages")._value.get()
    rows = [message(f"wamid.ok{i}") for i in range(10)]
    writer.add("messages", rows[:5] + list(POISON.values()) + rows[5:])
    writer.add("contacts", [])
    await asyncio.wait_for(writer.flush(), timeout=30)  # before: retried forever
    assert not writer.failing
    landed = final_rows(engine, "SELECT message_id FROM messages ORDER BY message_id")
    assert landed == sorted((row.message_id,) for row in rows)
    letters = final_rows(engine, "SELECT topic, partition, offset, key, error, raw FROM dead_letters")
    assert {topic for topic, *_ in letters} == {"clickhouse:messages"}
    assert {(partition, offset, key) for _, partition, offset, key, _, _ in letters} == {(-1, -1, PNID)}
    by_id = {orjson.loads(raw)["message_id"]: (error, orjson.loads(raw)) for *_, error, raw in letters}
    assert set(by_id) == set(POISON)
    assert by_id["wamid.str-time"][0].startswith("ArrowInvalid: ")
    assert by_id["wamid.str-time"][1]["sent_at"] == "2025-02-11T00:00:00Z"
    assert by_id["wamid.huge-code"][0].startswith("OverflowError: ")
    assert by_id["wamid.huge-code"][1]["error_code"] == 2**70
    assert metrics.ROWS_REFUSED.labels("messages")._value.get() - refused_before == 3

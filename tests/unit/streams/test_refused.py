"""A record Kafka refuses (too large, corrupt) is a dead letter and the agent goes on; a failure that
waiting may cure is still raised (streams/refused.py, `PublishWindow.send`)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.exceptions import ProducerSendError

from runtime.settings import Settings
from schemas.rows import DeadLetterRow
from streams import app as app_module
from streams import publish
from streams.app import StreamWorker
from streams.processor import release_record

PNID = "106540352242922"


class _Writer:
    buffered_rows = 0
    failing = False
    failing_s = 0.0

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {}

    def add(self, table: str, rows: Sequence[NamedTuple]) -> None:
        self.rows.setdefault(table, []).extend(rows)


def _send_raising(error: Exception) -> Any:
    async def send(**_: Any) -> Any:
        try:
            raise error
        except Exception as exc:  # as faust's producer wraps aiokafka's errors
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    return send


def _send_failing_later(error: Exception) -> Any:
    async def send(**_: Any) -> Any:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent.set_exception(error)
        return sent

    return send


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StreamWorker, _Writer]:
    async def no_tracking(*_: Any) -> None:
        return None

    monkeypatch.setattr(publish, "track_topics", no_tracking)
    writer = _Writer()
    w = StreamWorker(Settings(data_dir=tmp_path), writer)  # type: ignore[arg-type]
    monkeypatch.setattr(w.window, "producer", lambda: None)
    return w, writer


RELEASE = release_record(PNID, "waba", "live", None, None, False, b'[{"message_id":"wamid.1"}]')


async def test_a_record_the_producer_refuses_is_a_dead_letter_holding_it(
    worker: tuple[StreamWorker, _Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, writer = worker
    monkeypatch.setattr(w.normalized, "send", _send_raising(MessageSizeTooLargeError("The message is 35 MB")))
    await w.window.send(RELEASE)
    await w.window.confirm()
    [letter] = writer.rows["dead_letters"]
    assert isinstance(letter, DeadLetterRow)
    assert (letter.topic, letter.partition, letter.offset, letter.key) == ("coex.normalized_messages", -1, -1, PNID)
    assert letter.error.startswith("MessageSizeTooLargeError")
    assert orjson.loads(letter.raw) == orjson.loads(RELEASE.payload())


async def test_a_record_the_broker_refuses_after_sending_is_a_dead_letter_naming_it(
    worker: tuple[StreamWorker, _Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, writer = worker
    monkeypatch.setattr(w.normalized, "send", _send_failing_later(RecordListTooLargeError()))
    await w.window.send(RELEASE)
    await w.window.confirm()
    [letter] = writer.rows["dead_letters"]
    assert letter.error.startswith("RecordListTooLargeError")
    # Its head only (the messages are in the `messages` table): a window of records is not held twice.
    assert orjson.loads(letter.raw) == {**orjson.loads(RELEASE.payload()), "messages": None}
    assert w.window.publishing == []


async def test_a_failure_that_waiting_may_cure_is_raised(
    worker: tuple[StreamWorker, _Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, writer = worker
    monkeypatch.setattr(w.normalized, "send", _send_raising(KafkaConnectionError("broker away")))
    with pytest.raises(ProducerSendError):
        await w.window.send(RELEASE)
    monkeypatch.setattr(w.normalized, "send", _send_failing_later(KafkaConnectionError("broker away")))
    await w.window.send(RELEASE)
    with pytest.raises(KafkaConnectionError):
        await w.window.confirm()
    assert "dead_letters" not in writer.rows


async def test_an_error_out_of_the_agent_exits_the_worker_to_be_started_again(
    worker: tuple[StreamWorker, _Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust would restart the agent on the same stream, the records it had read ahead lost: the
    worker then handled nothing of their partitions. A new process reads from the committed offsets."""
    w, _ = worker

    async def failing(_: Any) -> None:
        raise RuntimeError("a bug")

    def exit_(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(w, "_consume_events", failing)
    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    with pytest.raises(SystemExit) as exited:
        await w._consume(None)  # type: ignore[arg-type]
    assert exited.value.code == app_module.EXIT_AGENT_FAILED

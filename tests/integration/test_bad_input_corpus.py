"""Hostile input through the whole pipeline: `coex ingest` over HTTP, the real broker, a `coex worker`
process and the embedded engine it owns.

The corpus is generated from the reference's webhooks (tests/fixtures/spec): every field of every
kind (leaf or not) given a wrong type, removed, a huge integer, 300 levels of arrays, an unknown
key beside it; plus unknown kinds, bodies that are not envelopes, bytes that are not UTF-8, entry
times no DateTime holds, nesting up to and past orjson's limits, a 10 MB chunk and one over the
size limit. Each delivery gets the contract's HTTP code (never a 5xx); what is accepted lands or is a
dead letter of its own with its reason, exactly as the pure functions say (`Processor.process`), and
a valid neighbour sent with each one lands. No process stops. Chunks of 15 and 20 MB (the latter held
out of order) land and reach `normalized_messages` in parts, each under the topic's limit; a message
too large for any record is a dead letter of that topic.

COEX_SOAK=1 posts every variant of every field (the CI run takes two per field).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import jsontext
from schemas.errors import EnvelopeError
from schemas.routing import split_delivery
from sinks.remote import RemoteEngine, RemoteError, connect_owner
from streams.prepare import PART_BYTES
from streams.processor import Processor, Record
from tests.doubles import DictStore
from tests.integration.broker_kit import free_port
from tests.integration.ingest_kit import SECRET, signed
from topics.catalog import MAX_MESSAGE_BYTES, NORMALIZED_MESSAGES, topic_name

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "fixtures" / "spec"
DATABASE = "coex_corpus"
SOAK = os.environ.get("COEX_SOAK") == "1"
WAIT_S = float(os.environ.get("COEX_CORPUS_WAIT_S", "180"))
LARGE_BYTES = 10 * 1024 * 1024  # a chunk that lands today
BIG_BYTES = 15 * 1024 * 1024  # one whose release is over the topics' 32 MiB: sent in parts
HUGE_CHUNK_BYTES = 19 * 1024 * 1024  # about the most the ingest takes in one change (20 MiB)
HUGE = 2**70  # past 64 bits: orjson reads it as a float, orjson.dumps cannot write it
NEIGHBOUR_PNID = "700000000000001"

# What a field of each type becomes. `MISSING` removes it; `UNKNOWN` adds an unknown key beside the
# fields of an object (an object's variants) rather than replacing it.
MISSING = object()
UNKNOWN = object()
DEEP = object()  # 300 levels of arrays: more than a `raw` column holds (schemas/jsontext.py)
VARIANTS: dict[type, list[Any]] = {
    str: [12345, None, MISSING, [], {}, HUGE, "", "\u0000\ufffd", DEEP],
    int: ["12345", "not a number", None, MISSING, HUGE, -1, 2**64 - 1, 2**64, 1.5, True, DEEP],
    bool: ["true", None, MISSING, 1, DEEP],
    list: [None, MISSING, "x", {}, 7, [None], [[]], DEEP],
    dict: [None, MISSING, "x", [], 7, UNKNOWN, DEEP],
}
ENVELOPE_FRAME = ("entry", "id", "changes", "field", "value")  # what split_delivery requires


@dataclass
class Pipeline:
    url: str
    prefix: str
    engine_path: Path
    logs: Path
    ingest: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    bootstrap: str
    engine: RemoteEngine | None = None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.engine is None:
            self.engine = connect_owner(str(self.engine_path), DATABASE)
            assert self.engine is not None, f"the worker serves no engine; see {self.logs}"
        return list(self.engine.query_rows(sql))

    def ready(self) -> bool:
        """The ingest answers /readyz; the worker serves its engine, the tables made."""
        self.alive()
        try:
            if httpx.get(f"{self.url}/readyz", timeout=2).status_code != 200:
                return False
        except httpx.TransportError:
            return False
        self.engine = connect_owner(str(self.engine_path), DATABASE)
        if self.engine is None:
            return False
        try:
            self.engine.query_rows("SELECT count() FROM dead_letters")
        except RemoteError:  # the worker's migrations have not made it yet
            return False
        return True

    def alive(self) -> None:
        assert self.ingest.poll() is None, f"coex ingest exited; see {self.logs / 'ingest.log'}"
        assert self.worker.poll() is None, f"coex worker exited; see {self.logs / 'worker.log'}"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEX_")}
    env.update(values)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("corpus")
    run = uuid.uuid4().hex[:10]
    common = {"COEX_KAFKA_BOOTSTRAP": kafka_bootstrap, "COEX_TOPIC_PREFIX": f"corpus{run}.",
              "COEX_TOPIC_PARTITIONS": "3", "COEX_APP_SECRET": SECRET}  # fmt: skip
    port = free_port()
    with open(logs / "ingest.log", "ab") as out:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "coex.cli", "ingest"],
            env=_env(**common, COEX_INGEST_HOST="127.0.0.1", COEX_INGEST_PORT=str(port)),
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    engine_path = logs / "clickhouse"
    worker_env = _env(
        **common,
        COEX_CLICKHOUSE_URL=f"chdb://{engine_path}",
        COEX_CLICKHOUSE_DATABASE=DATABASE,
        COEX_WORKER_GROUP=f"corpus{run}",
        COEX_WORKER_WEB_PORT=str(free_port()),
        COEX_SQL_PORT=str(free_port()),
        COEX_SINK_BATCH_AGE_S="0.3",
        COEX_DATA_DIR=str(logs / "data"),
    )
    with open(logs / "worker.log", "ab") as out:
        worker = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "coex"), "worker", "--id", "w1"],
            env=worker_env, cwd=logs, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    p = Pipeline(
        f"http://127.0.0.1:{port}", common["COEX_TOPIC_PREFIX"], engine_path, logs, ingest, worker, kafka_bootstrap
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not p.ready():
            assert time.monotonic() < deadline, f"the pipeline never became ready; see {logs}"
            time.sleep(0.5)
        yield p
    finally:
        _stop(ingest)
        _stop(worker)


# ---- the corpus -------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    body: bytes
    pnid: str
    waba: str
    neighbour: str = ""  # the message id of a valid echo sent in the same delivery or right after it
    neighbour_inside: bool = False
    want: frozenset[int] = frozenset({200})
    answer: int = 0
    records: list[Record] = field(default_factory=list)


def dumps(value: Any) -> bytes:
    # The standard library writes integers of any size (HUGE); the corpus is small.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every field below the root: (path, value), parents before children."""
    children = value.items() if type(value) is dict else enumerate(value) if type(value) is list else ()
    for key, child in children:
        yield (*path, key), child
        yield from nodes(child, (*path, key))


def mutated(doc: Any, path: tuple[Any, ...], variant: Any) -> Any:
    copy = orjson.loads(orjson.dumps(doc))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if variant is UNKNOWN:
        parent[last]["x_unknown_field"] = {"nested": [1, "a", None], "n": HUGE}
    elif variant is MISSING:
        del parent[last]
    elif variant is DEEP:
        parent[last] = nested(300)
    else:
        parent[last] = variant
    return copy


def identify(doc: dict[str, Any], pnid: str, waba: str) -> dict[str, Any]:
    """The fixture as business `pnid` of WABA `waba`, so that each case's rows and dead letters are its own."""
    for entry in doc["entry"]:
        entry["id"] = waba
        for change in entry["changes"]:
            meta = change["value"].get("metadata")
            if type(meta) is dict and "phone_number_id" in meta:
                meta["phone_number_id"] = pnid
    return doc


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def echo_change(message_id: str) -> dict[str, Any]:
    echo = {"from": "15550783881", "to": "16505551234", "id": message_id, "timestamp": "1739230955",
            "type": "text", "text": {"body": "a valid neighbour"}}  # fmt: skip
    value = {"messaging_product": "whatsapp", "message_echoes": [echo],
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": NEIGHBOUR_PNID}}  # fmt: skip
    return {"field": "smb_message_echoes", "value": value}


def echo_body(message_id: str) -> bytes:
    return dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [echo_change(message_id)]}]})


def with_neighbour(doc: Any, message_id: str) -> Any:
    """`doc` with a valid echo change added to its first entry's changes, where it has them."""
    try:
        doc["entry"][0]["changes"].append(echo_change(message_id))
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return doc


def field_cases() -> list[Case]:
    cases: list[Case] = []
    for fixture in sorted(SPEC.glob("*.json")):
        original = orjson.loads(fixture.read_bytes())
        for path, value in list(nodes(original)):
            variants = VARIANTS[type(value)] if type(value) in VARIANTS else VARIANTS[str]
            if not SOAK:  # two per field, a different two for the next field
                start = len(cases) % len(variants)
                variants = [variants[start], variants[(start + 1) % len(variants)]]
            for variant in variants:
                n = len(cases)
                pnid, waba = f"9{n:014d}", f"8{n:014d}"
                doc = mutated(identify(orjson.loads(orjson.dumps(original)), pnid, waba), path, variant)
                names = {id(MISSING): "missing", id(UNKNOWN): "unknown key", id(DEEP): "300 deep"}
                label = names.get(id(variant), repr(variant))
                neighbour = f"wamid.nb.{n}"
                inside = n % 2 == 0 and with_neighbour(doc, neighbour) is not None
                # Only a field split_delivery requires may refuse the delivery (400); the rest is the worker's.
                frame = path[0] == "entry" and len(path) <= 5 and path[-1] in (*ENVELOPE_FRAME, *range(9))
                cases.append(
                    Case(f"{fixture.stem}:{'.'.join(map(str, path))}={label}", dumps(doc), pnid, waba,
                         neighbour, inside, frozenset({200, 400}) if frame else frozenset({200}))
                )  # fmt: skip
    return cases


def special_cases() -> list[Case]:
    """Bodies that are not envelopes, bytes that are not UTF-8, unknown kinds, nesting past the limits."""
    history = SPEC / "history_approved_example.json"
    good = identify(orjson.loads(history.read_bytes()), "600000000000001", "600000000000001")
    text = dumps(good)
    # Each its own business: one message id, three texts.
    surrogate = text.replace(b"600000000000001", b"600000000000002").replace(b"Thanks!", b"Thanks\\ud83d!")
    not_utf8 = text.replace(b"600000000000001", b"600000000000003").replace(b"Thanks!", b"Thanks\xff!")
    deep = dumps({"object": "x", "entry": [{"id": "1", "changes": [{"field": "history", "value": {"v": 0}}]}]})
    over = deep.replace(b'"v":0', b'"v":' + b"[" * jsontext.MAX_DEPTH + b"]" * jsontext.MAX_DEPTH)
    two_deep = identify(orjson.loads(history.read_bytes()), "600000000000004", "600000000000004")
    two_deep["entry"][0]["changes"][0]["value"]["history"][0]["threads"][0]["messages"][0]["text"]["x"] = nested(500)
    two_deep["entry"][0]["changes"].append(echo_change("wamid.nb.two_deep"))
    at_limit = identify(orjson.loads(history.read_bytes()), "600000000000005", "600000000000005")
    # The body, entry[] .. messages[], the message and its `text`: 13 levels above the arrays.
    at_limit["entry"][0]["changes"][0]["value"]["history"][0]["threads"][0]["messages"][0]["text"]["x"] = nested(
        jsontext.MAX_DEPTH - 13
    )
    account = SPEC / "account_update_example.json"
    times = {"6003": 2**64 - 1, "6004": 2**63, "6005": -(2**63), "6006": 2**40}
    dated = [identify(orjson.loads(account.read_bytes()), waba, waba) for waba in times]
    for doc, at in zip(dated, times.values(), strict=True):
        doc["entry"][0]["time"] = at
    unknown_kind = identify(orjson.loads((SPEC / "smb_message_echoes_example.json").read_bytes()), "6002", "6002")
    unknown_kind["entry"][0]["changes"][0]["field"] = "some_future_field"
    bodies: list[tuple[str, bytes, str, frozenset[int]]] = [
        ("empty", b"", "", frozenset({400})),
        ("null", b"null", "", frozenset({400})),
        ("array", b"[]", "", frozenset({400})),
        ("object without entry", b"{}", "", frozenset({400})),
        ("not JSON", b"{nope", "", frozenset({400})),
        ("truncated", text[: len(text) // 2], "", frozenset({400})),
        ("UTF-16", text.decode().encode("utf-16"), "", frozenset({400})),
        ("a byte not UTF-8 outside a string", text.replace(b'"object"', b'\xff"object"'), "", frozenset({400})),
        ("nested deeper than orjson reads", over, "", frozenset({400})),
        ("a byte not UTF-8 in a text", not_utf8, "600000000000003", frozenset({200})),
        ("a lone surrogate in a text", surrogate, "600000000000002", frozenset({200})),
        ("an unknown kind", dumps(unknown_kind), "6002", frozenset({200})),
        *(
            (f"an entry time of {at}", dumps(doc), waba, frozenset({200}))
            for doc, (waba, at) in zip(dated, times.items(), strict=True)
        ),
        ("a message nested 500 deep beside another change", jsontext.dumps(two_deep), "600000000000004",
         frozenset({200})),
        ("a message as deep as orjson reads", jsontext.dumps(at_limit), "600000000000005", frozenset({200})),
        ("an unknown object", dumps({**good, "object": "instagram", "extra": [1, {"a": HUGE}]}), "600000000000001",
         frozenset({200})),
    ]  # fmt: skip
    cases = [
        Case(name, body, pnid, pnid, f"wamid.nb.special.{i}", False, want)
        for i, (name, body, pnid, want) in enumerate(bodies)
    ]
    # Its neighbour is the echo change inside it.
    [inside] = [case for case in cases if case.pnid == "600000000000004"]
    inside.neighbour, inside.neighbour_inside = "wamid.nb.two_deep", True
    return cases


# ---- helpers --------------------------------------------------------------------------------------


async def post_all(url: str, cases: list[Case], concurrency: int = 8) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def post(case: Case) -> None:
            async with gate:
                case.answer = (await client.post("/webhook", content=case.body, headers=signed(case.body))).status_code
                if case.neighbour and not case.neighbour_inside:
                    body = echo_body(case.neighbour)
                    assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200

        await asyncio.gather(*(post(case) for case in cases))


def expected_dead_letters(cases: list[Case], prefix: str) -> set[tuple[str, str]]:
    """(key, error) of every dead letter the accepted cases must leave, by the pipeline's pure functions."""
    want: set[tuple[str, str]] = set()
    for case in cases:
        if case.answer != 200:
            continue
        try:
            records = split_delivery(case.body, "d", 1739230955.0)
        except EnvelopeError:
            raise AssertionError(f"{case.name}: accepted, yet not an envelope") from None
        processor = Processor(DictStore(), history_flush_timeout_s=600, media_pending_ttl_s=3600)
        for i, rec in enumerate(records):
            out = processor.process(Record(topic_name(rec.field, prefix), 0, i, rec.key, rec.value), 1739230960.0)
            want.update((rec.key.decode(), error) for error in out.dead_letters)
    return want


def wait_until(pipeline: Pipeline, what: str, check: Any, within_s: float = WAIT_S) -> None:
    """Until `check()` is True (it returns what it found otherwise), both processes alive throughout."""
    deadline = time.monotonic() + within_s
    while True:
        pipeline.alive()
        got = check()
        if got is True:
            return
        assert time.monotonic() < deadline, f"{what}: {got}; see {pipeline.logs}"
        time.sleep(1)


def big_chunk(pnid: str, size: int, *, order: int = 1, progress: int = 55, noise: bool = False) -> tuple[bytes, int]:
    """A valid history chunk of about `size` bytes, and how many messages it holds; with `noise`,
    texts that do not compress (as the held chunks' lz4 would have them)."""
    doc = identify(orjson.loads((SPEC / "history_approved_example.json").read_bytes()), pnid, pnid)
    history = doc["entry"][0]["changes"][0]["value"]["history"][0]
    history["metadata"].update(chunk_order=order, progress=progress)
    thread = history["threads"][0]
    template = thread["messages"][0]
    padding = "x" * 200
    sample = {**template, "id": "wamid.big.100000", "text": {"body": f"100000 {padding}"}}
    count = size // (len(orjson.dumps(sample)) + 1)
    texts = os.urandom(100 * count).hex() if noise else ""
    thread["messages"] = [
        {**template, "id": f"wamid.big.{order}.{i}",
         "text": {"body": f"{i} {texts[200 * i : 200 * i + 200] if noise else padding}"}}
        for i in range(count)
    ]  # fmt: skip
    history["threads"] = [thread]
    return dumps(doc), count


def _consumer(pipeline: Pipeline, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=pipeline.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES + 1024 * 1024,
        fetch_max_bytes=MAX_MESSAGE_BYTES + 1024 * 1024,
    )


async def read_topic(pipeline: Pipeline, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of a topic, in each partition's order."""
    consumer = _consumer(pipeline, topic)
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        found: list[tuple[bytes | None, bytes | None]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=2000)).values():
                found += [(r.key, r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def released(pipeline: Pipeline, pnid: str) -> list[dict[str, Any]]:
    """The records of `normalized_messages` keyed by `pnid`, in their order."""
    records = await read_topic(pipeline, f"{pipeline.prefix}{NORMALIZED_MESSAGES}")
    return [orjson.loads(value) for key, value in records if key == pnid.encode() and value]


def history_parts(records: list[dict[str, Any]], order: int) -> list[dict[str, Any]]:
    """The records of one chunk, checked to be its parts 1..n in order."""
    parts = [r for r in records if r["kind"] == "history" and r["chunk_order"] == order]
    assert [(r.get("part"), r.get("parts")) for r in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    return parts


# ---- tests ----------------------------------------------------------------------------------------


async def test_a_message_nested_500_deep_is_one_dead_letter_and_its_siblings_land(pipeline: Pipeline) -> None:
    pnid = "500000000000500"
    messages: list[dict[str, Any]] = [
        {"from": "16505551234", "id": f"wamid.deep.{i}", "timestamp": "1739230955", "type": "text",
         "text": {"body": str(i)}} for i in range(3)
    ]  # fmt: skip
    messages[1]["text"]["extra"] = nested(500)
    chunk = {"metadata": {"phase": 0, "chunk_order": 1, "progress": 100},
             "threads": [{"id": "16505551234", "messages": messages}]}  # fmt: skip
    value = {"messaging_product": "whatsapp", "history": [chunk],
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid}}  # fmt: skip
    body = dumps({"object": "whatsapp_business_account",
                  "entry": [{"id": "1", "changes": [{"field": "history", "value": value}]}]})  # fmt: skip
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=60) as client:
        assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200

    def landed() -> Any:
        rows = pipeline.rows(f"SELECT message_id FROM messages FINAL WHERE phone_number_id = '{pnid}' ORDER BY 1")
        letters = pipeline.rows(f"SELECT error, raw FROM dead_letters WHERE key = '{pnid}'")
        return ([r[0] for r in rows] == ["wamid.deep.0", "wamid.deep.2"] and len(letters) == 1) or (rows, letters)

    await asyncio.to_thread(wait_until, pipeline, "two messages and one dead letter", landed)
    [(error, raw)] = pipeline.rows(f"SELECT error, raw FROM dead_letters WHERE key = '{pnid}'")
    assert error.startswith("ChangeError: $.value.history[0].threads[0].messages[1]: expected at most 254 levels")
    assert orjson.loads(raw)["id"] == "wamid.deep.1"
    pipeline.alive()


async def test_the_bad_input_corpus_gets_its_http_codes_and_dead_letters_and_valid_neighbours_land(
    pipeline: Pipeline,
) -> None:
    cases = [*field_cases(), *special_cases()]
    started = time.monotonic()
    await post_all(pipeline.url, cases)
    big_pnid = "600000000000015"
    big, big_count = big_chunk(big_pnid, LARGE_BYTES)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=120) as client:
        big_answer = (await client.post("/webhook", content=big, headers=signed(big))).status_code
        over = b" " * (32 * 1024 * 1024 + 1)
        over_answer = (await client.post("/webhook", content=over, headers=signed(over))).status_code
        unsigned = echo_body("wamid.unsigned")
        unsigned_answer = (await client.post("/webhook", content=unsigned)).status_code
    posted_s = time.monotonic() - started

    wrong = [(c.name, c.answer) for c in cases if c.answer not in c.want]
    assert not wrong, f"{len(wrong)} answered against the contract, e.g. {wrong[:10]}"
    assert (big_answer, over_answer, unsigned_answer) == (200, 413, 401)
    pipeline.alive()

    neighbours = {c.neighbour for c in cases if c.neighbour and (c.answer == 200 or not c.neighbour_inside)}
    want_letters = expected_dead_letters(cases, pipeline.prefix)
    keys = {key for key, _ in want_letters} | {c.pnid for c in cases} | {c.waba for c in cases}

    def settled() -> Any:
        got_neighbours = {
            r[0] for r in pipeline.rows("SELECT message_id FROM messages FINAL WHERE message_id LIKE 'wamid.nb.%'")
        }
        letters = {(k, e) for k, e in pipeline.rows("SELECT key, error FROM dead_letters") if k in keys}
        big_rows = pipeline.rows(f"SELECT count() FROM messages FINAL WHERE phone_number_id = '{big_pnid}'")[0][0]
        if got_neighbours == neighbours and letters == want_letters and big_rows == big_count:
            return True
        return {
            "neighbours missing": sorted(neighbours - got_neighbours)[:5],
            "neighbours unexpected": sorted(got_neighbours - neighbours)[:5],
            "dead letters missing": sorted(want_letters - letters)[:5],
            "dead letters unexpected": sorted(letters - want_letters)[:5],
            "big chunk rows": (big_rows, big_count),
        }

    await asyncio.to_thread(wait_until, pipeline, "the corpus never settled", settled)
    assert all(error for _, error in want_letters)
    # An entry time no DateTime holds dates the event by its arrival.
    events = pipeline.rows(
        "SELECT waba_id, event_at > now() - 3600 FROM account_events FINAL WHERE waba_id LIKE '600_'"
    )
    assert sorted(events) == [("6003", 1), ("6004", 1), ("6005", 1), ("6006", 1)]
    assert "wamid.unsigned" not in {r[0] for r in pipeline.rows("SELECT message_id FROM messages FINAL")}
    # A non-UTF-8 byte or a lone surrogate in a text lands as U+FFFD.
    texts = pipeline.rows(
        "SELECT phone_number_id, text FROM messages FINAL "
        "WHERE phone_number_id IN ('600000000000002', '600000000000003') AND text LIKE 'Thanks%!' ORDER BY 1"
    )
    assert texts == [("600000000000002", "Thanks\ufffd!"), ("600000000000003", "Thanks\ufffd!")]
    pipeline.alive()
    print(
        f"corpus: {len(cases)} deliveries ({sum(c.answer == 200 for c in cases)} accepted, "
        f"{sum(c.answer == 400 for c in cases)} refused), {len(want_letters)} dead letters, "
        f"{len(neighbours)} neighbours, a {len(big) / 1e6:.1f} MB chunk of {big_count} messages; "
        f"posted in {posted_s:.1f} s, settled in {time.monotonic() - started:.1f} s"
    )


async def test_a_15_mb_chunk_lands_and_the_worker_goes_on(pipeline: Pipeline) -> None:
    # Its release to normalized_messages is 34.5 MB, over the topic's 32 MiB: it goes in parts. The send
    # of one record that size failed, faust restarted the agent, and no record of any business was
    # handled after it.
    pnid = "600000000000016"
    big, count = big_chunk(pnid, BIG_BYTES)
    after = echo_body("wamid.after.big")
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=120) as client:
        assert (await client.post("/webhook", content=big, headers=signed(big))).status_code == 200
        assert (await client.post("/webhook", content=after, headers=signed(after))).status_code == 200

    def landed() -> Any:
        rows = pipeline.rows(f"SELECT count() FROM messages FINAL WHERE phone_number_id = '{pnid}'")[0][0]
        neighbour = pipeline.rows("SELECT count() FROM messages FINAL WHERE message_id = 'wamid.after.big'")[0][0]
        return (rows, neighbour) == (count, 1) or {"chunk rows": (rows, count), "neighbour after it": neighbour}

    # A 10 MB chunk lands in a few seconds (the corpus test); 15 MB should in well under this.
    await asyncio.to_thread(wait_until, pipeline, "the 15 MB chunk or its neighbour never landed", landed, 15.0)
    # Apps read every message once, in order, from records each under the limit.
    parts = history_parts(await released(pipeline, pnid), 1)
    assert len(parts) > 1
    assert [m["message_id"] for r in parts for m in r["messages"]] == [f"wamid.big.1.{i}" for i in range(count)]
    pipeline.alive()


async def test_a_20_mb_chunk_held_out_of_order_is_kept_and_released_in_parts(pipeline: Pipeline) -> None:
    pnid = "600000000000017"
    big, count = big_chunk(pnid, HUGE_CHUNK_BYTES, order=2, progress=80, noise=True)
    first, _ = big_chunk(pnid, 2000, order=1, progress=40)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=120) as client:
        assert (await client.post("/webhook", content=big, headers=signed(big))).status_code == 200

        def held() -> Any:
            rows = pipeline.rows(f"SELECT count() FROM messages FINAL WHERE phone_number_id = '{pnid}'")[0][0]
            return rows == count or {"rows": (rows, count)}

        await asyncio.to_thread(wait_until, pipeline, "the 20 MB chunk never landed", held, 30.0)
        assert [r for r in await released(pipeline, pnid) if r["kind"] == "history"] == []  # held for chunk 1
        assert (await client.post("/webhook", content=first, headers=signed(first))).status_code == 200

    deadline = time.monotonic() + 30
    while True:
        records = await released(pipeline, pnid)
        held_parts = [r for r in records if r["kind"] == "history" and r["chunk_order"] == 2]
        # Chunk 1 and every part of chunk 2: the parts are sent one after another, read as they come.
        if (
            any(r["chunk_order"] == 1 for r in records)
            and held_parts
            and len(held_parts) == held_parts[0].get("parts", 1)
        ):
            break
        pipeline.alive()
        assert time.monotonic() < deadline, f"chunk 1 did not release the held chunk 2; see {pipeline.logs}"
        await asyncio.sleep(1)
    assert next(r["chunk_order"] for r in records if r["kind"] == "history") == 1
    parts = history_parts(records, 2)
    assert len(parts) > 1
    assert [m["message_id"] for r in parts for m in r["messages"]] == [f"wamid.big.2.{i}" for i in range(count)]
    # The held chunk's changelog: its parts, each a record under the limit.
    held_values = [v for _, v in await read_topic(pipeline, f"{pipeline.prefix[:-1]}-held_chunks-changelog") if v]
    assert len(held_values) > 2 and max(map(len, held_values)) <= PART_BYTES + 1024 * 1024
    pipeline.alive()


async def test_a_message_too_large_for_any_record_is_a_dead_letter_of_the_topic_and_the_worker_goes_on(
    pipeline: Pipeline,
) -> None:
    # Its text and its raw object are each 17 MB: 34 MB in normalized_messages, over the topic's 32 MiB.
    body = echo_body("wamid.too.large").replace(b"a valid neighbour", b"z" * (17 * 1000 * 1000))
    after = echo_body("wamid.after.too.large")
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=120) as client:
        assert (await client.post("/webhook", content=body, headers=signed(body))).status_code == 200
        assert (await client.post("/webhook", content=after, headers=signed(after))).status_code == 200
    topic = f"{pipeline.prefix}{NORMALIZED_MESSAGES}"

    def landed() -> Any:
        rows = pipeline.rows(
            "SELECT message_id FROM messages FINAL WHERE message_id IN ('wamid.too.large', 'wamid.after.too.large')"
        )
        letters = pipeline.rows(f"SELECT error FROM dead_letters FINAL WHERE topic = '{topic}'")
        ok = len(rows) == 2 and len(letters) == 1 and letters[0][0].startswith("MessageSizeTooLargeError")
        return ok or {"messages": rows, "dead letters": letters}

    await asyncio.to_thread(wait_until, pipeline, "the message, its dead letter or the next one", landed, 30.0)
    pipeline.alive()

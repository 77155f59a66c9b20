"""The processor and a purged business: older records are dropped (no rows, no dead letter, no
state), the first newer one forgets the state from before the purge, once."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.rows import PurgeRow
from streams.logic.purged import from_rows
from streams.processor import BUSINESSES, CONTACTS, MEDIA, REORDER, SYNC, Processor, Record
from tests.doubles import DictStore

PNID, OTHER = "106540352242922", "106540352249999"
OLD, PURGED_AT = 1_780_000_000, 1_790_000_000


def _body(pnid: str, field: str, value: dict[str, Any], time: int) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1555", "phone_number_id": pnid},
        **value,
    }
    entry = {"id": "waba-" + pnid, "time": time, "changes": [{"field": field, "value": value}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def _wrapped(body: bytes, received_at: float) -> bytes:
    """As the ingest wraps one change (schemas/routing.py)."""
    return orjson.dumps({"delivery_id": "d", "waba_id": "w", "entry_time": orjson.loads(body)["entry"][0]["time"],
                         "received_at": received_at, "change_index": 0, "body": orjson.Fragment(body)})  # fmt: skip


def history(pnid: str, time: int, order: int = 1) -> bytes:
    message = {
        "from": "16505551234",
        "id": f"wamid.{pnid}.{order}",
        "timestamp": str(time),
        "type": "media_placeholder",
    }
    chunk = {"metadata": {"phase": 0, "chunk_order": order, "progress": 50},
             "threads": [{"id": "16505551234", "messages": [message]}]}  # fmt: skip
    return _wrapped(_body(pnid, "history", {"history": [chunk]}, time), time + 1.0)


def contact(pnid: str, time: int) -> bytes:
    item = {"type": "contact", "action": "add", "metadata": {"timestamp": str(time)},
            "contact": {"phone_number": "16505551234", "full_name": "Ana Lima", "first_name": "Ana"}}  # fmt: skip
    return _wrapped(_body(pnid, "smb_app_state_sync", {"state_sync": [item]}, time), time + 1.0)


def run(processor: Processor, store: DictStore, value: bytes, offset: int = 0) -> Any:
    out = processor.process(Record("coex.history", 3, offset, PNID.encode(), value), now=float(PURGED_AT + 100))
    store.apply(out.writes)
    return out


def keys_of(store: DictStore, pnid: str) -> list[str]:
    return sorted(k for table in (REORDER, MEDIA, CONTACTS, SYNC) for k in store.tables[table] if k.startswith(pnid))


def test_old_records_are_dropped_and_new_ones_start_afresh() -> None:
    store = DictStore()
    processor = Processor(store, history_flush_timeout_s=600, media_pending_ttl_s=3600)
    for pnid in (PNID, OTHER):
        run(processor, store, history(pnid, OLD))
        run(processor, store, contact(pnid, OLD))
    assert keys_of(store, PNID) and keys_of(store, OTHER)

    other_before = keys_of(store, OTHER)
    processor.purges = from_rows([PurgeRow(PNID, PURGED_AT, 5, "waba-" + PNID)])
    dropped = run(processor, store, history(PNID, OLD, order=2))
    assert dropped.purged and not dropped.rows and not dropped.writes and not dropped.dead_letters
    assert run(processor, store, history(OTHER, OLD, order=2)).rows["messages"]

    newer = run(processor, store, contact(PNID, PURGED_AT + 1))
    assert not newer.purged and [r.full_name for r in newer.rows["contacts"]] == ["Ana Lima"]
    # Only what the new record made is left of the business; the other one keeps everything.
    assert keys_of(store, PNID) == [f"{PNID}|16505551234"]
    assert store.tables[BUSINESSES][f"{PNID}|purged"][4:] == str(PURGED_AT).encode()
    assert set(other_before) <= set(keys_of(store, OTHER))

    again = run(processor, store, history(PNID, PURGED_AT + 2))
    assert all(w.value is not None for w in again.writes)  # forgotten once, not again
    assert keys_of(store, PNID) == sorted([PNID, PNID, f"{PNID}|16505551234", f"{PNID}|wamid.{PNID}.1"])

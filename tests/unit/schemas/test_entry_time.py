"""An entry's `time` of any integer (a signed webhook may carry 2**64 - 1) never reaches a row as a
date no DateTime column holds: such a row failed every insert of its batch, for every business."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.normalize import MAX_UINT32
from schemas.routing import split_delivery
from schemas.rows import AccountEventRow, WebhookErrorRow
from sinks.encode import rows_to_arrow
from streams.prepare import prepare

RECEIVED_AT = 1739230955.0


def delivery(entry_time: int) -> bytes:
    changes = [
        {"field": "account_update", "value": {"phone_number": "15550783881", "event": "PARTNER_REMOVED"}},
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
                                        "errors": [{"code": 131060, "title": "t"}]}},
    ]  # fmt: skip
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "3", "time": entry_time,
                                                                           "changes": changes}]})  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**63), 2**64 - 1) | st.sampled_from([2**64 - 1, 2**63, -(2**63), 2**32, -1, 0, MAX_UINT32]))
def test_an_entry_time_is_a_date_the_tables_hold_or_the_arrival(entry_time: int) -> None:
    account, messages = (prepare(r.value).normalized for r in split_delivery(delivery(entry_time), "d", RECEIVED_AT))
    assert account is not None and messages is not None
    [event] = account.account_events
    [error] = messages.errors
    want = entry_time if 0 <= entry_time <= MAX_UINT32 else int(RECEIVED_AT)
    assert (event.event_at, error.occurred_at) == (want, want)
    assert rows_to_arrow(AccountEventRow, [event]).num_rows == 1
    assert rows_to_arrow(WebhookErrorRow, [error]).num_rows == 1

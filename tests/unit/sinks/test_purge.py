"""What `coex purge` deletes: every table naming the number, the WABA's account events, the dead
letters keyed by the number; and only ids, never SQL, get into its statements."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.purge import ID, PHONE_TABLES, Business, check_id, settle_s, targets
from sinks.tables import ROW_TYPES, columns


def test_every_table_with_a_phone_number_id_is_a_target_but_purges() -> None:
    named = {table for table in ROW_TYPES if "phone_number_id" in columns(table)} - {"purges"}
    assert named <= set(PHONE_TABLES)


def test_targets_name_the_number_the_waba_and_the_dead_letters() -> None:
    assert dict(targets(Business("111", "W1"))) == {
        **{table: "phone_number_id = '111'" for table in PHONE_TABLES},
        "account_events": "waba_id = 'W1'",
        "dead_letters": "key = '111'",
    }


def test_without_a_waba_its_account_events_stay() -> None:
    assert "account_events" not in dict(targets(Business("111", "")))


@pytest.mark.parametrize("bad", ["", "1' OR 1=1 --", "a b", "x" * 65, "1;DROP", "é", "111\n"])
def test_anything_but_an_id_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_id(bad, "phone_number_id")
    with pytest.raises(ValueError):
        targets(Business(bad, ""))


@given(st.text(min_size=1, max_size=80))
def test_an_accepted_id_is_one_plain_literal(value: str) -> None:
    if ID.fullmatch(value) is None:
        return
    where = dict(targets(Business(value, value)))
    assert where["messages"] == f"phone_number_id = '{value}'"
    assert "'" not in value and "\\" not in value


def test_the_wait_covers_a_poll_and_a_batch() -> None:
    assert settle_s(1.0) >= 2.0 + 1.0

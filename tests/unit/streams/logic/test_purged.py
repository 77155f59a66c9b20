"""Which records of a purged business are dropped: older than the purge, by the entry's time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import PurgeRow
from streams.logic.purged import Purges, from_rows, is_purged, record_time

PURGED_AT = 1_800_000_000
PURGES = from_rows([PurgeRow("111", PURGED_AT, 10, "W1")])


def test_nothing_is_purged_without_purges() -> None:
    assert not is_purged(Purges(), "111", "W1", 1, 1.0)


def test_an_old_record_of_the_business_is_purged() -> None:
    assert is_purged(PURGES, "111", "W1", PURGED_AT - 3600, PURGED_AT + 10.0)


def test_a_record_of_the_purge_second_is_purged() -> None:
    assert is_purged(PURGES, "111", "W1", PURGED_AT, None)


def test_a_newer_record_is_kept_the_business_onboarded_again() -> None:
    assert not is_purged(PURGES, "111", "W1", PURGED_AT + 1, None)


def test_the_entry_time_decides_over_the_receipt() -> None:
    # A redelivery of an old webhook arrives after the purge but carries its old entry time.
    assert is_purged(PURGES, "111", "W1", PURGED_AT - 60, PURGED_AT + 600.0)


def test_without_an_entry_time_the_receipt_decides() -> None:
    assert is_purged(PURGES, "111", "W1", None, PURGED_AT - 0.5)
    assert not is_purged(PURGES, "111", "W1", None, PURGED_AT + 1.5)


def test_a_record_with_no_time_at_all_is_dropped_with_its_business() -> None:
    assert is_purged(PURGES, "111", "W1", None, None)
    assert not is_purged(PURGES, "222", "W2", None, None)


def test_other_businesses_are_kept() -> None:
    assert not is_purged(PURGES, "222", "W2", PURGED_AT - 3600, None)


def test_another_number_of_the_same_waba_is_kept() -> None:
    assert not is_purged(PURGES, "333", "W1", PURGED_AT - 3600, None)


def test_an_account_update_of_the_waba_is_purged() -> None:
    # account_update records carry no phone_number_id, only the WABA id.
    assert is_purged(PURGES, "", "W1", PURGED_AT - 3600, None)
    assert not is_purged(PURGES, "", "W2", PURGED_AT - 3600, None)


def test_the_newest_purge_of_a_number_counts() -> None:
    purges = from_rows([PurgeRow("111", 100, 1, ""), PurgeRow("111", 300, 1, ""), PurgeRow("111", 200, 1, "")])
    assert purges.by_phone == {"111": 300}
    assert purges.by_waba == {}
    assert is_purged(purges, "111", "", 250, None)


def test_record_time() -> None:
    assert record_time(5, 9.0) == 5.0
    assert record_time(None, 9.0) == 9.0
    assert record_time(0, 9.0) == 9.0
    assert record_time(None, None) is None


@given(
    purged_at=st.integers(1, 2**32 - 1),
    entry=st.one_of(st.none(), st.integers(1, 2**32 - 1)),
    received=st.one_of(st.none(), st.floats(1.0, 2.0**32, allow_nan=False)),
)
def test_purged_iff_not_newer(purged_at: int, entry: int | None, received: float | None) -> None:
    purges = from_rows([PurgeRow("111", purged_at, 0, "W1")])
    at = record_time(entry, received)
    assert is_purged(purges, "111", "W1", entry, received) == (at is None or at <= purged_at)
    assert not is_purged(purges, "222", "W1", entry, received)

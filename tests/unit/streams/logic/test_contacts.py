"""Contact changes fold to the newest by their own timestamp, whatever order they arrive in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import ContactRow, contact_version
from streams.logic import contacts


def _change(wa_id: str, at: int, deleted: bool) -> ContactRow:
    name = "" if deleted else f"Name {at}"
    return ContactRow("106540352242922", wa_id, name, name.split(" ")[0], int(deleted), at, "w",
                      contact_version(at, deleted))  # fmt: skip


changes = st.lists(
    st.builds(_change, st.sampled_from(["16505551234", "12125557890"]), st.integers(1, 50), st.booleans()),
    min_size=1,
    max_size=20,
)


@given(changes, st.randoms())
def test_any_arrival_order_ends_in_the_newest_change_per_contact(history: list[ContactRow], rnd: object) -> None:
    arrivals = list(history)
    rnd.shuffle(arrivals)  # type: ignore[attr-defined]
    state: dict[str, contacts.Folded] = {}
    table: dict[str, ContactRow] = {}  # ReplacingMergeTree: highest version, last insert among equals
    for row in arrivals:
        key = contacts.key(row.phone_number_id, row.contact_wa_id)
        if contacts.apply(state.get(key), row):
            state[key] = contacts.Folded(row.version, row)
            if key not in table or row.version >= table[key].version:
                table[key] = row
        else:
            assert row.version < state[key].version
    for key in table:
        newest = max(r.version for r in history if contacts.key(r.phone_number_id, r.contact_wa_id) == key)
        assert table[key].version == newest
        assert state[key].version == newest
        assert contacts.decode(contacts.encode(state[key])) == state[key]


def test_a_removal_is_a_tombstone_an_older_add_cannot_undo() -> None:
    removal = _change("16505551234", 20, True)
    older_add = _change("16505551234", 10, False)
    assert contacts.apply(None, removal)
    folded = contacts.Folded(removal.version, removal)
    assert not contacts.apply(folded, older_add)
    assert contacts.apply(folded, removal)  # a redelivery is written again


def test_the_state_of_the_previous_release_still_decodes() -> None:
    assert contacts.decode(b"3479460041") == contacts.Folded(3479460041, None)

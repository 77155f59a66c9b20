"""Media placeholder + follow-up: whichever comes first, and however often, the enriched row wins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import MessageRow, message_version
from streams.logic import media_join

PLACEHOLDER = MessageRow(
    "106540352242922", "102290129340398", "wamid.M1", "16505551234", "outbound", "history",
    "media_placeholder", "", "", "", "played", 1739230970, 1, 4, "{}", "", None, message_version(False, "played"),
)  # fmt: skip
FOLLOWUP = MessageRow(
    "106540352242922", "102290129340398", "wamid.M1", "", "outbound", "history",
    "image", "Black Prince echeveria", "24230790383178626", "image/jpeg", "", 1739230970, None, None,
    '{"type":"image"}', "", None, message_version(True, ""),
)  # fmt: skip
ENRICHED = FOLLOWUP._replace(
    contact_wa_id="16505551234", status="played", history_phase=1, history_chunk_order=4,
    version=message_version(True, "played"),
)  # fmt: skip


def _winner(rows: list[MessageRow]) -> MessageRow:
    """What ReplacingMergeTree keeps: the highest version, the last inserted among equals."""
    best = rows[0]
    for row in rows[1:]:
        if row.version >= best.version:
            best = row
    return best


@given(st.lists(st.booleans(), min_size=1, max_size=6).filter(lambda xs: any(xs) and not all(xs)))
def test_any_order_of_placeholder_and_followup_ends_in_the_enriched_row(sides: list[bool]) -> None:
    pending: media_join.Pending | None = None
    written: list[MessageRow] = []
    for i, is_followup in enumerate(sides):
        if is_followup:
            pending, row = media_join.on_followup(pending, FOLLOWUP, float(i))
        else:
            pending, row = media_join.on_placeholder(pending, PLACEHOLDER, float(i))
        written.append(row)
        assert pending is not None
        pending = media_join.decode(media_join.encode(pending))
    assert _winner(written) == ENRICHED
    assert written[-1] == ENRICHED


def test_a_placeholder_alone_stays_a_placeholder() -> None:
    pending, row = media_join.on_placeholder(None, PLACEHOLDER, 0.0)
    assert row == PLACEHOLDER
    assert media_join.expired(pending, 10.0, 10.0)
    assert not media_join.expired(pending, 9.9, 10.0)


def test_the_followups_own_fields_win_over_the_placeholders() -> None:
    followup = FOLLOWUP._replace(sent_at=1739230999)
    row = media_join.enrich(followup, PLACEHOLDER)
    assert (row.sent_at, row.history_phase, row.status) == (1739230999, 1, "played")


def test_the_placeholders_thread_names_the_contact_and_the_direction() -> None:
    # A follow-up has no thread: a business `from` spelled unlike its displayed number reads as
    # inbound from the business itself; the placeholder's thread knows better.
    followup = FOLLOWUP._replace(direction="inbound", contact_wa_id="5215512345678")
    row = media_join.enrich(followup, PLACEHOLDER)
    assert (row.direction, row.contact_wa_id) == ("outbound", "16505551234")

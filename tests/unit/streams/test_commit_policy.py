"""When the agent commits: by what it holds, not by how many records it came in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.settings import Settings
from streams.commit_policy import QUIET_S, Held, Limits, commit_by_time, commit_due, may_commit_now

MIB = 1024 * 1024
LIMITS = Limits(records=10_000, record_bytes=64 * MIB, rows=50_000)


def test_a_thousand_media_follow_ups_are_not_a_commit() -> None:
    # An import sends tens of thousands of one-message follow-ups (~1 KB each): a commit per
    # thousand of them was nearly every commit of an import.
    held = Held(records=1_000, record_bytes=1_000 * 1024, rows=1_000)
    assert not commit_due(held, LIMITS, writer_due=False, writing=False)


def test_records_bytes_or_the_writer_make_a_commit() -> None:
    assert commit_due(Held(10_000, 10 * MIB, 10_000), LIMITS, writer_due=False, writing=False)
    # History chunks of a shuffled import are held by the reorder buffer: no rows, but their records.
    assert commit_due(Held(40, 64 * MIB, 0), LIMITS, writer_due=False, writing=False)
    assert commit_due(Held(1, 1024, 1), LIMITS, writer_due=True, writing=False)


def test_while_the_last_write_runs_the_agent_goes_on_until_it_holds_two_batches() -> None:
    assert not commit_due(Held(10_000, 1 * MIB, 0), LIMITS, writer_due=True, writing=True)
    assert commit_due(Held(20_000, 1 * MIB, 0), LIMITS, writer_due=False, writing=True)
    assert commit_due(Held(50, 128 * MIB, 0), LIMITS, writer_due=False, writing=True)
    assert commit_due(Held(50, 1 * MIB, 100_000), LIMITS, writer_due=True, writing=True)


def test_the_defaults_bound_a_commit_by_bytes_before_records() -> None:
    settings = Settings()
    assert settings.worker_batch_records == 10_000
    assert settings.worker_batch_bytes == 64 * MIB


holdings = st.builds(
    Held,
    records=st.integers(0, 100_000),
    record_bytes=st.integers(0, 1 << 30),
    rows=st.integers(0, 500_000),
)


@given(held=holdings, writer_due=st.booleans(), writing=st.booleans())
def test_a_commit_only_at_a_bound_and_never_more_than_two_batches_held(
    held: Held, writer_due: bool, writing: bool
) -> None:
    due = commit_due(held, LIMITS, writer_due=writer_due, writing=writing)
    at_a_bound = writer_due or held.records >= LIMITS.records or held.record_bytes >= LIMITS.record_bytes
    if due:
        assert at_a_bound
    if at_a_bound and not writing:
        assert due
    over_two = (
        held.records >= 2 * LIMITS.records
        or held.record_bytes >= 2 * LIMITS.record_bytes
        or held.rows >= 2 * LIMITS.rows
    )
    assert may_commit_now(held, LIMITS, writing=writing) == (not writing or over_two)


def test_the_end_of_a_burst_is_committed_without_waiting_out_the_age() -> None:
    assert commit_by_time(age_s=0.3, quiet_s=QUIET_S, since_commit_s=0.6, max_age_s=1.0)
    assert not commit_by_time(age_s=0.3, quiet_s=None, since_commit_s=0.6, max_age_s=1.0)  # records to apply
    assert not commit_by_time(age_s=0.3, quiet_s=0.05, since_commit_s=0.6, max_age_s=1.0)  # maybe more coming
    assert commit_by_time(age_s=1.0, quiet_s=None, since_commit_s=1.0, max_age_s=1.0)  # the age, busy or not


def test_a_trickle_of_live_messages_still_comes_in_batches() -> None:
    # A message every 0.3 s leaves the agent quiet between them: at most two commits per batch age.
    assert not commit_by_time(age_s=0.25, quiet_s=0.25, since_commit_s=0.3, max_age_s=1.0)
    assert commit_by_time(age_s=0.25, quiet_s=0.25, since_commit_s=0.5, max_age_s=1.0)


@given(
    age=st.floats(0, 10),
    quiet=st.none() | st.floats(0, 10),
    since=st.floats(0, 10),
    max_age=st.floats(0.01, 10),
)
def test_committed_by_time_only_when_old_or_quiet_and_not_too_soon(
    age: float, quiet: float | None, since: float, max_age: float
) -> None:
    due = commit_by_time(age_s=age, quiet_s=quiet, since_commit_s=since, max_age_s=max_age)
    assert due == (age >= max_age or (quiet is not None and quiet >= QUIET_S and since >= max_age / 2))

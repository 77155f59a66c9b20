"""Topic names: one ingest topic per documented change field, `unknown` for anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.settings import Settings
from schemas.routing import KNOWN_FIELDS, UNKNOWN_FIELD
from topics.catalog import INGEST_TOPICS, NORMALIZED_MESSAGES, changelog_topic, topic_name, topic_names


def test_each_documented_field_has_its_topic_and_the_rest_go_to_unknown() -> None:
    assert (*KNOWN_FIELDS, UNKNOWN_FIELD) == INGEST_TOPICS
    assert topic_name("history", "coex.") == "coex.history"
    assert topic_name("messages", "") == "messages"
    assert topic_name("phone_number_quality_update", "coex.") == "coex.unknown"
    assert topic_name("unknown", "coex.") == "coex.unknown"


@given(st.text(max_size=40))
def test_any_field_lands_in_an_ingest_topic(field: str) -> None:
    assert topic_name(field, "p.") in {f"p.{t}" for t in INGEST_TOPICS}


def test_the_created_topics_are_the_ingest_topics_and_normalized_messages() -> None:
    settings = Settings(topic_prefix="x.", worker_group="g")
    assert topic_names(settings) == [f"x.{t}" for t in (*INGEST_TOPICS, NORMALIZED_MESSAGES)]
    assert changelog_topic(settings, "media_join") == "g-media_join-changelog"

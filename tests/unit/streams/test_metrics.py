"""The worker's onboarding gauges, and the shipped alert rules naming only metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import sinks.metrics  # noqa: F401  (registers the writer's metrics, served by the worker too)
from sinks.onboarding_watch import Watched
from streams.metrics import OnboardingGauges

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "coex-alerts.yml"
NOW = 1_800_000_000
HOUR = 3600


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def watched(pnid: str, contacts_at: int, history_at: int, *, history_arrived: bool = False) -> Watched:
    return Watched(pnid, "w", NOW - 3 * HOUR, NOW + 21 * HOUR, contacts_at, history_at, True, history_arrived)


def test_the_deadline_shows_until_both_syncs_are_requested_and_a_silent_sync_is_flagged() -> None:
    gauges = OnboardingGauges()
    gauges.update([watched("g1", NOW - 3 * HOUR, 0), watched("g2", NOW - 3 * HOUR, NOW - 3 * HOUR)], NOW, 2 * HOUR)
    assert sample("coex_onboarding_deadline_seconds", phone_number_id="g1") == 21 * HOUR
    assert sample("coex_onboarding_deadline_seconds", phone_number_id="g2") is None
    assert sample("coex_onboarding_silent", phone_number_id="g2", sync_type="history") == 1
    assert sample("coex_onboarding_silent", phone_number_id="g2", sync_type="smb_app_state_sync") == 0
    assert sample("coex_onboarding_silent", phone_number_id="g1", sync_type="history") is None
    gauges.update([watched("g1", NOW - 3 * HOUR, NOW, history_arrived=True)], NOW, 2 * HOUR)  # g2 purged
    assert sample("coex_onboarding_deadline_seconds", phone_number_id="g1") is None
    assert sample("coex_onboarding_silent", phone_number_id="g1", sync_type="history") == 0
    assert sample("coex_onboarding_silent", phone_number_id="g2", sync_type="history") is None


def test_the_alert_rules_name_only_metrics_the_processes_expose() -> None:
    import streams.metrics  # noqa: F401

    families = list(REGISTRY.collect())
    exposed = {family.name + ("_total" if family.type == "counter" else "") for family in families}
    exposed |= {s.name for family in families for s in family.samples}
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {"CoexOnboardingDeadlineNear", "CoexOnboardingSyncSilent"}
    for rule in rules:
        named = set(re.findall(r"\bcoex_[a-z_]+", rule["expr"]))
        assert named and named <= exposed, rule["alert"]

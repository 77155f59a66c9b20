"""The one settings object: every `COEX_*` variable of the contract, read once at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.redact import redact_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COEX_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The contract's variables.
    kafka_bootstrap: str = "127.0.0.1:9092"
    clickhouse_url: str = Field(default="chdb:///./.coex/clickhouse", repr=False)  # may hold a password
    clickhouse_database: str = "coex"
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    ingest_port: int = 8000
    insecure_skip_signature: bool = False
    # The control plane: the Graph API calls of onboarding (onboarding/, graph/).
    graph_api_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v24.0"
    meta_app_id: str | None = None
    graph_token: SecretStr | None = None  # a system user's: resumed onboardings, status checks
    admin_token: SecretStr | None = None  # bearer of the ingest's /onboardings; unset: they answer 404

    # Everything else: ours, with defaults that fit one machine.
    ingest_host: str = "0.0.0.0"
    # /docs, /redoc and /openapi.json on the ingest's public port: off in production, on in `coex dev`.
    ingest_docs: bool = False
    data_dir: Path = Path(".coex")
    topic_prefix: str = "coex."
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    topic_retention_ms: int = 7 * 24 * 3600 * 1000
    max_body_bytes: int = 32 * 1024 * 1024
    kafka_send_timeout_s: float = 10.0
    kafka_max_request_bytes: int = 20 * 1024 * 1024

    sink_batch_rows: int = Field(default=50_000, ge=1)
    sink_batch_age_s: float = Field(default=1.0, gt=0)
    sink_retry_max_s: float = 30.0
    # A batch failing this long is an alert (an error logged, coex_sink_failing_seconds), and no longer
    # excuses an idle worker from its stall timeout.
    sink_alert_after_s: float = Field(default=300.0, gt=0)

    worker_id: str = "coex-worker"
    worker_web_port: int = 6066
    # Loopback by default: a container sets 0.0.0.0 so that Prometheus can scrape /metrics.
    worker_web_bind: str = "127.0.0.1"
    history_flush_timeout_s: float = 600.0
    media_pending_ttl_s: float = 3 * 24 * 3600.0
    # Follow-ups come only for media of the 14 days before onboarding; 2 days of slack for late syncs.
    media_followup_window_s: float = 16 * 24 * 3600.0
    # Stream worker: faust app id = Kafka consumer group (and prefix of its changelog topics).
    worker_group: str = "coex"
    # A commit's bounds besides the writer's rows and age (streams/commit_policy.py): records it acks,
    # and their bytes, held in memory until then.
    worker_batch_records: int = Field(default=10_000, ge=1)
    worker_batch_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Records from this size on are parsed ahead of the agent in a helper process (streams/helper.py); 0: none.
    worker_helper_min_bytes: int = Field(default=64 * 1024, ge=0)
    worker_sweep_interval_s: float = Field(default=30.0, gt=0)  # reorder timeouts, media TTL
    # A worker that handles no record this long while records wait (and ClickHouse takes writes)
    # exits to be started again (streams/stall.py); 0 never.
    worker_stall_timeout_s: float = Field(default=300.0, ge=0)
    # A dead worker's partitions move after this (the broker's group.min.session.timeout.ms is 6 s);
    # a live one heartbeats every second.
    worker_session_timeout_s: float = Field(default=10.0, ge=6)
    # How long a rebalance waits for the members it knows to join again: one that is slower is
    # dropped from the group (it joins again later) instead of holding every partition up.
    worker_rebalance_timeout_s: float = Field(default=20.0, ge=1)
    # A stopping worker's wait for ClickHouse to take its buffered rows (`coex dev` gives a child 60 s).
    worker_shutdown_flush_s: float = Field(default=30.0, ge=0)

    # Onboarding: Graph calls retried this long at most before the step stops with the error; a sync
    # requested this long ago with no webhook of its kind yet is flagged (the platform accepted
    # requests before and then sent nothing).
    graph_retry_max_s: float = Field(default=120.0, ge=0)
    onboarding_silence_alert_s: float = Field(default=2 * 3600.0, gt=0)
    # How often a worker reads the onboardings for its deadline and silence metrics.
    onboarding_watch_interval_s: float = Field(default=30.0, gt=0)

    # Loopback endpoint through which `coex sql` reaches an embedded engine that a worker owns.
    sql_port: int = 8123 + 10000
    # High enough to export a business's 180-day history; stops a runaway cross join.
    sql_max_rows: int = 10_000_000
    sql_max_seconds: int = 60

    def masked(self) -> dict[str, object]:
        """Settings as a dict, safe to log."""
        return {**self.model_dump(mode="json"), "clickhouse_url": redact_url(self.clickhouse_url)}

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

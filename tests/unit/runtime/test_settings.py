import pytest

from runtime.settings import Settings
from sinks.client import parse_url


def test_contract_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COEX_KAFKA_BOOTSTRAP", "COEX_CLICKHOUSE_URL", "COEX_CLICKHOUSE_DATABASE", "COEX_INGEST_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.clickhouse_url == "chdb:///./.coex/clickhouse"
    assert s.clickhouse_database == "coex"
    assert s.ingest_port == 8000
    assert s.app_secret is None


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COEX_APP_SECRET", "hunter2")
    assert "hunter2" not in str(Settings(_env_file=None).masked())


def test_relative_chdb_url_resolves_against_cwd(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = parse_url("chdb:///./.coex/clickhouse")
    assert target.embedded and target.path == str(tmp_path / ".coex" / "clickhouse")
    assert parse_url("chdb:///var/lib/coex").path == "/var/lib/coex"
    assert not parse_url("http://default:@localhost:8123").embedded
    with pytest.raises(ValueError):
        parse_url("mysql://x")

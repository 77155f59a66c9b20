"""No output shows the ClickHouse password: how a URL is shown, and text scrubbed of it."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coex.dev import banner
from runtime.redact import redact_url, scrub, scrub_logs
from runtime.settings import Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://analyst:s3cretpw@127.0.0.1:8123", "http://analyst:***@127.0.0.1:8123"),
        ("https://u:p%40ss@ch.example:8443/?secure=1", "https://u:***@ch.example:8443/?secure=1"),
        ("http://default@127.0.0.1:8123", "http://default@127.0.0.1:8123"),
        ("chdb:///./.coex/clickhouse", "chdb:///./.coex/clickhouse"),
        ("http://u:pw@host:notaport", "http://u:***@host:notaport"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_text_is_scrubbed_of_the_password_however_it_is_spelled() -> None:
    url = "https://u:p%40ss@h:8443"
    text = f"cannot reach {url}: auth failed for password p@ss (p%40ss)"
    assert scrub(text, url) == "cannot reach https://u:***@h:8443: auth failed for password *** (***)"


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@/:?#[]%"), min_size=4))
def test_no_password_survives_scrubbing(password: str) -> None:
    url = f"http://user:{password}@127.0.0.1:8123"
    assert password not in scrub(f"{url} said {password}", url)


def test_the_dev_banner_shows_no_password() -> None:
    settings = Settings(_env_file=None, clickhouse_url="http://analyst:s3cretpw@127.0.0.1:8123")
    shown = banner(settings, secret_from_file=True)
    assert "s3cretpw" not in shown and "analyst:***@127.0.0.1:8123" in shown


def test_log_lines_are_scrubbed() -> None:
    url = "http://analyst:s3cretpw@127.0.0.1:8123"
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    formatters = {h: h.formatter for h in root.handlers}
    try:
        scrub_logs(url)
        try:
            raise ConnectionError(f"cannot reach {url}")
        except ConnectionError:
            logging.getLogger("clickhouse_connect").exception("driver failed with password s3cretpw")
        assert isinstance(handler.stream, io.StringIO)
        written = handler.stream.getvalue()
    finally:
        for h, formatter in formatters.items():
            h.setFormatter(formatter)
        root.removeHandler(handler)
    assert "s3cretpw" not in written and "analyst:***@127.0.0.1:8123" in written


def test_settings_show_no_password() -> None:
    settings = Settings(_env_file=None, clickhouse_url="http://analyst:s3cretpw@127.0.0.1:8123")
    assert "s3cretpw" not in repr(settings) + str(settings) + str(settings.masked())
    assert settings.masked()["clickhouse_url"] == "http://analyst:***@127.0.0.1:8123"

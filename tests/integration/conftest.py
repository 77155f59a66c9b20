from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.broker_kit import Broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, to stop or kill (never the session's)."""
    (tmp_path / "kafka").mkdir()
    b = Broker(tmp_path / "kafka")
    b.run("start")
    try:
        yield b
    finally:
        b.run("stop")

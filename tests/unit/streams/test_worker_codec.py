"""What the worker produces is compressed with snappy: zstd at aiokafka's fixed level 3 cost its busiest
thread ~2 s per million messages (bench/RESULTS.md)."""

from pathlib import Path

import pytest

from runtime.settings import Settings
from streams.app import StreamWorker
from topics import producing


class _NoWriter:
    buffered_rows = 0
    failing = False


def test_the_worker_produces_snappy(tmp_path: Path) -> None:
    app = StreamWorker(Settings(data_dir=tmp_path), _NoWriter()).app  # type: ignore[arg-type]
    assert app.conf.producer_compression_type == "snappy"


def test_without_a_snappy_codec_the_worker_falls_back_to_the_ingests_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producing, "has_snappy", lambda: False)
    monkeypatch.setattr(producing, "pick_compression", lambda: "zstd")
    assert producing.pick_worker_compression() == "zstd"

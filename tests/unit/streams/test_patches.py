"""Every private attribute of faust, mode and aiokafka that streams/patches.py reads or replaces is
there in the installed versions; a missing one stops the worker with a message that names it."""

from __future__ import annotations

import logging
import types

import pytest

from streams import patches
from streams.patches import TARGETS, PatchTargetMissing, Target, check_patch_targets, has_attribute, missing_targets


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_each_patch_target_exists_in_the_installed_library(target: Target) -> None:
    assert has_attribute(target.owner, target.attribute), f"{target.name} is gone: see streams/patches.py"


def test_the_installed_libraries_pass_the_check() -> None:
    assert missing_targets() == []
    check_patch_targets()


class Stub:
    """A library class whose new version renamed what a patch relies on."""

    kept = 1

    def __init__(self) -> None:
        self._set_in_init = 2


def test_attributes_set_by_a_method_or_on_the_class_are_found() -> None:
    assert has_attribute(Stub, "kept")
    assert has_attribute(Stub, "_set_in_init")
    assert not has_attribute(Stub, "_renamed")


def test_a_missing_attribute_is_named_with_the_pinned_versions() -> None:
    with pytest.raises(PatchTargetMissing) as raised:
        check_patch_targets((Target(Stub, "kept"), Target(Stub, "_renamed")))
    message = str(raised.value)
    assert f"{__name__}.Stub._renamed" in message
    assert "kept" not in message
    assert "faust-streaming==0.15.3" in message and "aiokafka==0.14.0" in message


def test_the_worker_refuses_to_start_on_other_library_versions(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from streams import worker

    monkeypatch.setattr(worker, "check_patch_targets", lambda: check_patch_targets((Target(Stub, "_renamed"),)))

    def opened(*_: object) -> None:
        raise AssertionError("the worker went on past a failed check")

    monkeypatch.setattr(worker, "open_engine", opened)
    monkeypatch.setattr(worker, "bound_memory", opened)
    with caplog.at_level(logging.CRITICAL):
        assert worker.run(object(), object()) == worker.EXIT_LIBRARY_MISMATCH  # type: ignore[arg-type]
    assert "Stub._renamed" in caplog.text


class _Flow:
    def __init__(self, active: bool) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


class _App:
    def __init__(self, generation: int, active: bool) -> None:
        self.consumer_generation_id = generation
        self.flow_control = _Flow(active)
        self.consumer = types.SimpleNamespace(ack=lambda message: True)


@pytest.mark.parametrize(
    ("generation", "active", "stale"), [(3, True, False), (2, True, True), (3, False, True), (2, False, True)]
)
def test_a_record_read_before_a_rebalance_is_not_acked(generation: int, active: bool, stale: bool) -> None:
    app = _App(3, active)
    message = types.SimpleNamespace(generation_id=generation)
    assert patches.read_before_rebalance(app, message) is stale
    patches.refuse_stale_acks(app)
    assert app.consumer.ack(message) is (not stale)

"""Typed errors for malformed payloads: where the bad field is and what was expected.

Their `str()` is what lands in `dead_letters.error`.
"""

from __future__ import annotations


class SchemaError(ValueError):
    """A payload that cannot be parsed or normalized."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: {expected}")
        self.path = path
        self.expected = expected


class EnvelopeError(SchemaError):
    """The body is not a webhook envelope (`object`, `entry[].changes[]`)."""


class ChangeError(SchemaError):
    """One change's `value` does not match the form its `field` documents."""


class UnsupportedChange(SchemaError):
    """A change of a field coex does not process (the platform sends more than Coexistence's)."""

    def __init__(self, field: str) -> None:
        super().__init__("$.field", f"one of the Coexistence fields, not {field!r} (kept here unprocessed)")

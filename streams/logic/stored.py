"""State kept in changelog topics, as named records: JSON objects with a `format` number.

A record is read by field name: a field it lacks (written before the field was added) takes the
field's default, a field it has that the type lost is ignored. So a field added to a state type or
to `MessageRow` with a default decodes from every record already in the changelog. `format` is
raised only when a field changes meaning; each state's `decode` also reads the unnamed encoding
written before these records (a JSON array, or for the reorder state letters as keys).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

FORMAT_KEY = "format"  # not `version`: that is already a field of the sync state (its row version)


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


class _Row(Protocol):
    """A NamedTuple row."""

    @property
    def _fields(self) -> tuple[str, ...]: ...

    def _asdict(self) -> dict[str, Any]: ...


D = TypeVar("D", bound=_Dataclass)
R = TypeVar("R", bound=_Row)


@functools.cache
def _field_names(cls: type[_Dataclass]) -> tuple[str, ...]:
    # Once per type: `dataclasses.fields` costs more than the rest of a small record's decoding.
    return tuple(f.name for f in dataclasses.fields(cls))


def fields_of(record: _Dataclass) -> dict[str, Any]:
    """The record's fields by name (not recursing into nested dataclasses, unlike `asdict`)."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


def build(cls: type[D], doc: Mapping[str, Any], **decoded: Any) -> D:
    """An instance of `cls` from `doc` by field name; `decoded` gives fields already converted.
    A field in neither takes its default (a `TypeError` if it has none: the record is unreadable)."""
    values = {name: doc[name] for name in _field_names(cls) if name in doc and name not in decoded}
    return cls(**values, **decoded)


def row_doc(row: _Row | None) -> dict[str, Any] | None:
    return None if row is None else row._asdict()


def row_from(row_type: type[R], doc: Mapping[str, Any] | None) -> R | None:
    """A row from its fields by name; a field the record lacks takes the row type's default."""
    if doc is None:
        return None
    names: tuple[str, ...] = getattr(row_type, "_fields")  # noqa: B009 (typed as an instance attribute)
    if tuple(doc) == names:
        # Written by this version (every field, in order): the values are the row; a media
        # follow-up decodes its placeholder's row on the agent's thread.
        return row_type(*doc.values())
    return row_type(**{name: doc[name] for name in names if name in doc})

"""How deep coex's JSON may nest, and writing decoded JSON again at any depth it accepts.

Two parsers' limits meet here. The ingest parses a delivery with orjson.loads, which refuses more
than MAX_DEPTH levels: that is the ingest's limit (deeper: 400). Everything it accepts must be
written again without failing: its records (`schemas.routing`, through `dumps`), an unreadable
item's dead letter (`schemas.normalize`, through `dumps`). Only a `raw` column is held to
orjson.dumps' own limit, ROW_DEPTH: an item nested deeper is a dead letter of its own, its
siblings land.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson

# orjson.loads refuses a document nested deeper (tests/unit/schemas/test_jsontext.py pins both limits).
MAX_DEPTH = 1024
# orjson.dumps refuses an object nested deeper: the most a stored `raw` column holds.
ROW_DEPTH = 254
# Levels a record adds around a delivery or a change (schemas/routing.py), with room to spare.
_WRAPPER_LEVELS = 16


def too_deep(exc: orjson.JSONDecodeError) -> bool:
    """Whether orjson.loads refused a document for nesting deeper than MAX_DEPTH."""
    return str(exc).startswith("depth limit exceeded")


def dumps(value: Any) -> bytes:
    """Compact JSON of a value decoded from JSON, however deep: orjson's, or where it stops (past
    ROW_DEPTH) the standard library's, which recursion alone limits (raised here for the call).

    Valid JSON of the same value either way; not always the same bytes (a float's spelling)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        if type(value) is not dict and type(value) is not list:
            raise
    limit = sys.getrecursionlimit()
    # The stack so far fits the current limit; each level of JSON costs the encoder one call more.
    sys.setrecursionlimit(limit + MAX_DEPTH + _WRAPPER_LEVELS)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    finally:
        sys.setrecursionlimit(limit)

"""How deep coex's JSON may nest, and writing decoded JSON again at any depth it accepts.

Two parsers' limits meet here. The ingest parses a delivery with orjson.loads, which refuses more
than MAX_DEPTH levels: that is the ingest's limit (deeper: 400). Everything it accepts must be
written again without failing: its records (`schemas.routing`, through `dumps`), an unreadable
item's dead letter (`schemas.normalize`, through `dumps`). Only a `raw` column is held to
orjson.dumps' own limit, ROW_DEPTH: an item nested deeper is a dead letter of its own, its
siblings land.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

# orjson.loads refuses a document nested deeper (tests/unit/test_json_depth.py pins both limits).
MAX_DEPTH = 1024
# orjson.dumps refuses an object nested deeper: the most a stored `raw` column holds.
ROW_DEPTH = 254


def too_deep(exc: orjson.JSONDecodeError) -> bool:
    """Whether orjson.loads refused a document for nesting deeper than MAX_DEPTH."""
    return str(exc).startswith("depth limit exceeded")


def dumps(value: Any) -> bytes:
    """Compact JSON of a value decoded from JSON, however deep (orjson.dumps alone stops past
    ROW_DEPTH): orjson writes every part it can, and the levels above the too-deep parts are joined
    here, without recursion."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        if type(value) is not dict and type(value) is not list:
            raise
    out: list[bytes] = []
    # The parts left to write of each open container, outermost first, with its closing bracket.
    stack: list[tuple[Iterator[tuple[bytes, Any]], bytes]] = []
    _open(value, out, stack)
    while stack:
        parts, close = stack[-1]
        part = next(parts, None)
        if part is None:
            out.append(close)
            stack.pop()
            continue
        prefix, item = part
        out.append(prefix)
        try:
            out.append(orjson.dumps(item))
        except orjson.JSONEncodeError:
            if type(item) is not dict and type(item) is not list:
                raise
            _open(item, out, stack)
    return b"".join(out)


def _open(value: Any, out: list[bytes], stack: list[tuple[Iterator[tuple[bytes, Any]], bytes]]) -> None:
    if type(value) is dict:
        out.append(b"{")
        keyed = (((b"," if i else b"") + orjson.dumps(k) + b":", v) for i, (k, v) in enumerate(value.items()))
        stack.append((keyed, b"}"))
    else:
        out.append(b"[")
        stack.append((((b"," if i else b"", v) for i, v in enumerate(value)), b"]"))

"""Compact bytes for held history chunks: lz4 frames when the codec is installed, else zstd, else plain.

The first byte names the codec, so a changelog written with one codec reads back on a worker that
has another (or none) as long as that codec is installed there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

_PLAIN = b"0"
_LZ4 = b"l"
_ZSTD = b"z"


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_lz4 = _load("lz4.frame")
_zstd = _load("backports.zstd") or _load("compression.zstd")

_DECODERS: dict[bytes, Callable[[bytes], bytes]] = {_PLAIN: bytes}
if _lz4 is not None:
    _DECODERS[_LZ4] = _lz4.decompress
if _zstd is not None:
    _DECODERS[_ZSTD] = _zstd.decompress


def pack(data: bytes) -> bytes:
    if _lz4 is not None:
        return _LZ4 + bytes(_lz4.compress(data))
    if _zstd is not None:
        return _ZSTD + bytes(_zstd.compress(data))
    return _PLAIN + data


def unpack(blob: bytes) -> bytes:
    tag, body = blob[:1], blob[1:]
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise ValueError(f"held chunk written with codec {tag!r}, which is not installed here")
    return bytes(decoder(body))
